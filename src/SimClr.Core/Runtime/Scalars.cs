using TorchSharp;
using static TorchSharp.torch;

namespace SimClr.Core.Runtime;

/// <summary>
/// Scalars that stay alive while torch reads them. TorchSharp turns a number passed for a Scalar parameter into a
/// Scalar object whose native memory only its finalizer frees; once the native handle is passed on, that object is
/// unreachable, so under allocation pressure the garbage collector can finalize it while the native call still reads
/// it. The symptom is random native errors (seen here: "Expected false to be true" from c10 Scalar::toFloat in the
/// optimiser step of a worker busy with gRPC buffers; dotnet/TorchSharp#1434). Code that runs every step passes
/// these constants (rooted for the life of the process) or a <see cref="Of"/> held in a <c>using</c> around the calls.
/// TorchSharp's one-argument <c>add(Tensor)</c>, <c>add_(Tensor)</c>, <c>add(Scalar)</c> and <c>add_(Scalar)</c> create
/// such a Scalar (alpha = 1) on every call, even when the value passed is rooted, and so does its own BatchNorm forward
/// (<c>num_batches_tracked.add_(1)</c>; see <see cref="Models.BatchNorm2d"/>): every-step code uses <see cref="Plus"/>,
/// <see cref="Minus"/>, <see cref="Shift"/> and their in-place forms instead.
/// </summary>
public static class Scalars
{
    public static readonly Scalar Zero = 0.0.ToScalar();
    public static readonly Scalar One = 1.0.ToScalar();
    public static readonly Scalar Two = 2.0.ToScalar();
    public static readonly Scalar Four = 4.0.ToScalar();
    public static readonly Scalar Six = 6.0.ToScalar();
    public static readonly Scalar Half = 0.5.ToScalar();
    public static readonly Scalar MinusHalf = (-0.5).ToScalar();
    public static readonly Scalar ByteMax = 255.0.ToScalar();
    public static readonly Scalar NegativeInfinity = double.NegativeInfinity.ToScalar();

    public static readonly Scalar MinusOne = (-1.0).ToScalar();

    /// <summary>a + b, with a Scalar alpha that stays alive.</summary>
    public static Tensor Plus(this Tensor a, Tensor b) => a.add(b, One);

    public static Tensor PlusInPlace(this Tensor a, Tensor b) => a.add_(b, One);

    /// <summary>a - b, with a Scalar alpha that stays alive.</summary>
    public static Tensor Minus(this Tensor a, Tensor b) => a.add(b, MinusOne);

    public static Tensor MinusInPlace(this Tensor a, Tensor b) => a.add_(b, MinusOne);

    /// <summary>t + s for a rooted Scalar s, with a rooted alpha.</summary>
    public static Tensor Shift(this Tensor t, Scalar s) => t.add(s, One);

    public static Tensor ShiftInPlace(this Tensor t, Scalar s) => t.add_(s, One);

    /// <summary>A Scalar the caller owns: dispose it after the last call that uses it (which also keeps it alive until then).</summary>
    public static Scalar Of(double value) => value.ToScalar();
}

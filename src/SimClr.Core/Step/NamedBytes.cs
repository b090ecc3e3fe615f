using static TorchSharp.torch;

namespace SimClr.Core.Step;

/// <summary>One named tensor of a replica's state as bytes: float32 for floating-point tensors, int64 otherwise.</summary>
public sealed record NamedBytes(string Name, bool IsFloat, long[] Shape, byte[] Data)
{
    public static NamedBytes From(string name, Tensor tensor)
    {
        bool isFloat = tensor.is_floating_point();
        using var scope = NewDisposeScope(); // keeps every intermediate referenced while the next call reads it
        var cpu = tensor.detach().cpu().to_type(isFloat ? ScalarType.Float32 : ScalarType.Int64).contiguous();
        return new NamedBytes(name, isFloat, tensor.shape, cpu.bytes.ToArray());
    }

    public Tensor ToTensor()
    {
        long count = Shape.Aggregate(1L, (a, b) => a * b);
        if (count * (IsFloat ? 4 : 8) != Data.Length)
            throw new InvalidDataException($"{Name}: {Data.Length} bytes for shape [{string.Join(", ", Shape)}]");
        var tensor = empty(Shape, IsFloat ? ScalarType.Float32 : ScalarType.Int64);
        Data.CopyTo(tensor.bytes);
        return tensor;
    }
}

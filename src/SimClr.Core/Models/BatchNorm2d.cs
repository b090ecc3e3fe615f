using SimClr.Core.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace SimClr.Core.Models;

/// <summary>
/// torch.nn.BatchNorm2d (eps 1e-5, momentum 0.1, affine, running statistics; state names weight, bias, running_mean,
/// running_var, num_batches_tracked) whose forward counts batches with rooted Scalars. TorchSharp's own BatchNorm
/// forward does <c>num_batches_tracked.add_(1)</c>: two Scalar temporaries whose native memory the finalizer thread may
/// free while libtorch still reads them (dotnet/TorchSharp#1434, see <see cref="Scalars"/>). Seen here as a worker
/// failing after 341 steps with "For integral input tensors, argument alpha must not be a floating point number" from
/// BatchNorm: the freed alpha had been reused by a floating-point Scalar.
/// </summary>
public sealed class BatchNorm2d : TorchSharp.Modules.BatchNorm
{
    private static readonly Scalar OneBatch = 1L.ToScalar();

    public BatchNorm2d(long features) : base(features, eps: 1e-5, momentum: 0.1, affine: true, track_running_stats: true, device: null, dtype: null, name: nameof(BatchNorm2d))
    {
    }

    protected override void ValidateInputDimensions(Tensor input)
    {
        if (input.ndim != 4) throw new ArgumentException($"BatchNorm2d expects a 4-D input [batch, channels, height, width], got {input.ndim}-D");
    }

    public override Tensor forward(Tensor input)
    {
        ValidateInputDimensions(input);
        if (training) num_batches_tracked!.add_(OneBatch, OneBatch);
        return nn.functional.batch_norm(input, running_mean, running_var, weight, bias, training, momentum ?? 0.1, eps);
    }
}

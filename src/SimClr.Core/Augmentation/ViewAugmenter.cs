using SimClr.Core.Runtime;
using static TorchSharp.torch;

namespace SimClr.Core.Augmentation;

/// <summary>
/// Turns uint8 images into normalised views, batched on the images' device with per-view parameters:
/// resized crop and flip as two small interpolation matrices per view (bilinear, half-pixel centres, clamped to
/// the crop box as torchvision's crop-then-resize), colour jitter in each view's own order, grayscale, Gaussian blur,
/// normalise.
/// </summary>
public sealed class ViewAugmenter
{
    private readonly double[] _mean;
    private readonly double[] _std;

    public ViewAugmenter(AugmentationOptions options, ulong seed, double[] mean, double[] std)
    {
        options.Validate();
        if (mean.Length != std.Length || mean.Length == 0) throw new ArgumentException("mean and std need one value per channel");
        if (std.Any(s => !(s > 0))) throw new ArgumentOutOfRangeException(nameof(std), "std must be > 0");
        Sampler = new ViewSampler(options, seed);
        _mean = mean;
        _std = std;
    }

    public ViewSampler Sampler { get; }

    public AugmentationOptions Options => Sampler.Options;

    /// <summary>
    /// Two views of each image, interleaved as NT-Xent expects (rows 2b and 2b+1 are image b's views 0 and 1).
    /// <paramref name="images"/>: uint8 [B, C, H, W] on any device; <paramref name="indices"/>: their data-set indices.
    /// </summary>
    public Tensor TwoViews(Tensor images, ReadOnlySpan<long> indices, long epoch)
    {
        var items = new (long Index, int View)[2 * indices.Length];
        for (int b = 0; b < indices.Length; b++)
        {
            items[2 * b] = (indices[b], 0);
            items[2 * b + 1] = (indices[b], 1);
        }
        using var scope = NewDisposeScope();
        return Views(images.repeat_interleave(2, dim: 0), items, epoch).MoveToOuterDisposeScope();
    }

    /// <summary>One view per row: <paramref name="images"/>[m] is image items[m].Index, augmented as its view items[m].View.</summary>
    public Tensor Views(Tensor images, ReadOnlySpan<(long Index, int View)> items, long epoch)
    {
        CheckBatch(images, items.Length);
        int height = (int)images.shape[2], width = (int)images.shape[3];
        var parameters = new ViewParameters[items.Length];
        for (int m = 0; m < items.Length; m++) parameters[m] = Sampler.Sample(epoch, items[m].Index, items[m].View, height, width);
        return Apply(images, parameters);
    }

    /// <summary>The evaluation transform: resize to the output size if needed, normalise.</summary>
    public Tensor Evaluate(Tensor images)
    {
        CheckBatch(images, (int)images.shape[0]);
        var identity = ViewParameters.Identity((int)images.shape[2], (int)images.shape[3]);
        return Apply(images, Enumerable.Repeat(identity, (int)images.shape[0]).ToArray());
    }

    /// <summary>
    /// Which implementation runs: <see cref="AugmentationKernel.Auto"/> takes the fused CPU loops for images on the CPU
    /// and tensor operations on any other device.
    /// </summary>
    public AugmentationKernel Kernel { get; init; } = AugmentationKernel.Auto;

    /// <summary>Threads the CPU kernel may use (views run in parallel); default: torch's intra-op thread count.</summary>
    internal int? CpuThreads { get; init; }

    /// <summary>Applies explicit parameters (one per row). uint8 input is scaled to [0, 1]; float input must already be.</summary>
    public Tensor Apply(Tensor images, IReadOnlyList<ViewParameters> parameters)
    {
        CheckBatch(images, parameters.Count);
        bool cpu = Kernel == AugmentationKernel.Cpu || (Kernel == AugmentationKernel.Auto && images.device_type == TorchSharp.DeviceType.CPU);
        if (cpu)
        {
            if (images.device_type != TorchSharp.DeviceType.CPU) throw new ArgumentException("the CPU augmentation kernel needs images on the CPU");
            return CpuViewKernel.Apply(images, parameters, Options.OutputSize, _mean, _std, CpuThreads ?? get_num_threads(), Options.BlurKernelSize);
        }
        using var scope = NewDisposeScope();
        var device = images.device;
        var x = images.dtype == ScalarType.Byte ? images.to_type(ScalarType.Float32).div_(Runtime.Scalars.ByteMax) : images.to_type(ScalarType.Float32);
        x = ResizedCropAndFlip(x, parameters);
        x = ColourJitter(x, parameters);
        x = Grayscale(x, parameters);
        x = GaussianBlur.Apply(x, parameters, Options.BlurKernelSize);
        var mean = tensor(_mean.Select(v => (float)v).ToArray(), device: device).view(1, -1, 1, 1);
        var std = tensor(_std.Select(v => (float)v).ToArray(), device: device).view(1, -1, 1, 1);
        return x.Minus(mean).div_(std).MoveToOuterDisposeScope();
    }

    private void CheckBatch(Tensor images, int count)
    {
        if (images.dim() != 4) throw new ArgumentException($"images must be [N, C, H, W]; got {images.dim()} dimensions");
        if (images.shape[0] != count) throw new ArgumentException($"{images.shape[0]} images for {count} views");
        if (images.shape[1] != _mean.Length) throw new ArgumentException($"images have {images.shape[1]} channels, normalisation has {_mean.Length}");
    }

    private Tensor ResizedCropAndFlip(Tensor x, IReadOnlyList<ViewParameters> p)
    {
        int size = Options.OutputSize;
        int height = (int)x.shape[2], width = (int)x.shape[3];
        bool identity = size == height && size == width && p.All(v => v.Top == 0 && v.Left == 0 && v.Height == height && v.Width == width && !v.Flip);
        if (identity) return x;
        var device = x.device;
        var rows = Interpolation(Column(p, v => v.Top, device), Column(p, v => v.Height, device), size, height);
        var cols = Interpolation(Column(p, v => v.Left, device), Column(p, v => v.Width, device), size, width);
        var flip = tensor(p.Select(v => v.Flip).ToArray(), device: device).view(-1, 1, 1);
        cols = where(flip, cols.flip(1), cols);
        // [m,1,S,H] @ [m,C,H,W] @ [m,1,W,S] -> [m,C,S,S]
        return rows.unsqueeze(1).matmul(x).matmul(cols.transpose(1, 2).unsqueeze(1));
    }

    /// <summary>
    /// Bilinear resampling of [start, start + length) onto <paramref name="size"/> outputs as a [m, size, input] matrix:
    /// output o samples at start + (o + 0.5) * length / size - 0.5, clamped inside the crop (as resize of the cropped image).
    /// </summary>
    private static Tensor Interpolation(Tensor start, Tensor length, int size, int input)
    {
        var o = arange(size, dtype: ScalarType.Float32, device: start.device).Shift(Runtime.Scalars.Half).unsqueeze(0);
        var lo = start.unsqueeze(1);
        // (TorchSharp's + and - operators make Scalars that can be finalized mid-call: see Runtime.Scalars)
        var hi = start.Plus(length).ShiftInPlace(Runtime.Scalars.MinusOne).unsqueeze(1);
        using var sizeScalar = Runtime.Scalars.Of(size);
        var position = minimum(maximum(lo.Plus(o.mul(length.div(sizeScalar).unsqueeze(1))).ShiftInPlace(Runtime.Scalars.MinusHalf), lo), hi);
        var x0 = position.floor();
        var a = position.Minus(x0).unsqueeze(2);
        var x1 = minimum(x0.Shift(Runtime.Scalars.One), hi);
        var left = nn.functional.one_hot(x0.to_type(ScalarType.Int64), input).to_type(ScalarType.Float32);
        var right = nn.functional.one_hot(x1.to_type(ScalarType.Int64), input).to_type(ScalarType.Float32);
        return left.mul(a.neg().ShiftInPlace(Runtime.Scalars.One)).PlusInPlace(right.mul(a));
    }

    private static Tensor ColourJitter(Tensor x, IReadOnlyList<ViewParameters> p)
    {
        if (!p.Any(v => v.Jitter)) return x;
        var device = x.device;
        var factors = new Dictionary<JitterOp, Tensor>
        {
            [JitterOp.Brightness] = Column(p, v => v.Brightness, device),
            [JitterOp.Contrast] = Column(p, v => v.Contrast, device),
            [JitterOp.Saturation] = Column(p, v => v.Saturation, device),
            [JitterOp.Hue] = Column(p, v => v.Hue, device),
        };
        for (int position = 0; position < 4; position++)
        {
            foreach (JitterOp op in Enum.GetValues<JitterOp>())
            {
                // only the views that apply this adjustment at this position, and not as a no-op
                long[] members = Enumerable.Range(0, p.Count)
                    .Where(m => p[m].Jitter && p[m].Order[position] == op && !IsNoOp(p[m], op)).Select(m => (long)m).ToArray();
                if (members.Length == 0) continue;
                var index = tensor(members, device: device);
                var subset = x.index_select(0, index);
                var f = factors[op].index_select(0, index);
                var adjusted = op switch
                {
                    JitterOp.Brightness => ColorOps.Brightness(subset, f),
                    JitterOp.Contrast => ColorOps.Contrast(subset, f),
                    JitterOp.Saturation => ColorOps.Saturation(subset, f),
                    _ => ColorOps.Hue(subset, f),
                };
                x.index_copy_(0, index, adjusted);
            }
        }
        return x;
    }

    private static bool IsNoOp(ViewParameters v, JitterOp op) => op switch
    {
        JitterOp.Brightness => v.Brightness == 1,
        JitterOp.Contrast => v.Contrast == 1,
        JitterOp.Saturation => v.Saturation == 1,
        _ => v.Hue == 0,
    };

    private static Tensor Grayscale(Tensor x, IReadOnlyList<ViewParameters> p)
    {
        long[] members = Enumerable.Range(0, p.Count).Where(m => p[m].Grayscale).Select(m => (long)m).ToArray();
        if (members.Length == 0 || x.shape[1] == 1) return x;
        var index = tensor(members, device: x.device);
        return x.index_copy_(0, index, ColorOps.ToGrayscale(x.index_select(0, index)));
    }

    private static Tensor Column(IReadOnlyList<ViewParameters> p, Func<ViewParameters, double> pick, Device device) =>
        tensor(p.Select(v => (float)pick(v)).ToArray(), device: device);
}

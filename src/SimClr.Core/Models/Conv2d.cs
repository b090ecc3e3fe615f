using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace SimClr.Core.Models;

/// <summary>
/// A square 2-D convolution without bias (torch.nn.Conv2d(in, out, k, stride, padding, bias=False); its one parameter is
/// named weight, [out, in, k, k]) that keeps CPU convolutions off the oneDNN kernels that compute wrong results.
/// <para>
/// libtorch runs float32 CPU convolutions through oneDNN, whose AVX-512 kernels work on blocks of 16 channels. When a
/// convolution's input or output channels fill a block only partly (8, 12 or 24 channels: width 0.125 has 8, width 0.375
/// has 24), some of those kernels return wrong values, NaN among them, and one writes past its workspace, corrupting
/// other memory of the process (uxlfoundation/oneDNN#6035, strided 1x1 backward-weights). Measured on an AMD EPYC with
/// AVX-512 and 2 threads against float64 (<c>OneDnnConvolutionTests</c>): 3x3 forward with 24 input channels,
/// 3x3 backward-data with 8, 12 or 24 output channels. Whole blocks were right in every case tried.
/// So on CPU a convolution whose channel counts are not multiples of 16 runs on zero-padded channels: the input gets zero
/// channels and the weight zero rows and columns up to whole blocks, and the extra output channels are dropped. The sums
/// are the same (every added product is 0 x 0 or has a dropped output), and the gradients of the real weight and input
/// are those of the unpadded convolution. Widths 0.25, 0.5 and 1.0 pad nothing (the 3-channel stem's input is read
/// unblocked, <see cref="UnblockedInputChannels"/>); other devices never pad.
/// </para>
/// <para>
/// A second oneDNN fault, on the same CPU: the input gradient of some strided 1x1 convolutions with 1024 or more output
/// channels (resnet50's shortcuts from half width up: 256 -> 1024 and 1024 -> 2048 at stride 2) stops the process with
/// SIGFPE, while 1008 or 1040 channels run. On CPU a strided 1x1 convolution with more than
/// <see cref="LargestStridedPointwiseOutput"/> output channels therefore reads every stride-th pixel first and convolves
/// that with stride 1: the same products (a 1x1 kernel at stride s reads exactly those pixels), and the same forward and
/// weight-gradient bits as measured; the input gradient may round differently. Narrower ones, every one resnet18 and
/// resnet34 have up to full width, keep the strided kernel and their bits.
/// </para>
/// </summary>
public sealed class Conv2d : nn.Module<Tensor, Tensor>, IMixedPrecisionLayer
{
    /// <summary>oneDNN's channel block on AVX-512 (AVX2's 8 divides it).</summary>
    public const int OneDnnChannelBlock = 16;

#pragma warning disable IDE1006 // PyTorch's parameter name
    private readonly Parameter weight;
#pragma warning restore IDE1006
    private readonly long[] _stride;
    private readonly long[] _padding;
    private readonly long[] _inputPad;
    private readonly long[] _weightPad;

    public Conv2d(int inChannels, int outChannels, int kernelSize, int stride = 1, int padding = 0) : base(nameof(Conv2d))
    {
        if (inChannels < 1 || outChannels < 1 || kernelSize < 1 || stride < 1 || padding < 0)
            throw new ArgumentOutOfRangeException(nameof(inChannels), $"convolution {inChannels} -> {outChannels}, kernel {kernelSize}, stride {stride}, padding {padding} is not valid");
        InChannels = inChannels;
        OutChannels = outChannels;
        KernelSize = kernelSize;
        _stride = [stride, stride];
        _padding = [padding, padding];
        long extraIn = inChannels <= UnblockedInputChannels ? 0 : WholeBlocks(inChannels) - inChannels;
        long extraOut = WholeBlocks(outChannels) - outChannels;
        _inputPad = [0, 0, 0, 0, 0, extraIn];
        _weightPad = [0, 0, 0, 0, 0, extraIn, 0, extraOut];
        weight = new Parameter(empty(outChannels, inChannels, kernelSize, kernelSize));
        RegisterComponents();
    }

    public int InChannels { get; }

    public int OutChannels { get; }

    public int KernelSize { get; }

    public Parameter Weight => weight;

    /// <summary>fp32, or bf16: input and weight cast to bfloat16 for the convolution, the output returned as float32.</summary>
    public ComputePrecision Precision { get; set; }

    /// <summary>
    /// Input channels up to this many (an RGB or grey image) are not padded: oneDNN runs such a first layer with kernels
    /// that read the input unblocked (plain NCHW), and they measured right for 1 and 3 input channels, forward and both
    /// gradients, once the output channels fill whole blocks. Padding the stem's 3 channels to 16 cost 14 ms per 128
    /// views at full width and 13% of all convolution time at width 0.25 (`simclr bench conv`).
    /// </summary>
    public const int UnblockedInputChannels = 3;

    /// <summary>Strided 1x1 convolutions with up to this many output channels run oneDNN's strided kernel on CPU; wider
    /// ones subsample first (see the class remarks).</summary>
    public const int LargestStridedPointwiseOutput = 512;

    /// <summary>Whether CPU runs read every stride-th pixel and convolve with stride 1 (a wide strided 1x1 convolution).</summary>
    internal bool SubsamplesOnCpu => KernelSize == 1 && _stride[0] > 1 && _padding[0] == 0 && OutChannels > LargestStridedPointwiseOutput;

    /// <summary>The channel counts CPU runs compute with (padded where they fill a block partly).</summary>
    internal (long In, long Out) CpuChannels => (InChannels + _weightPad[5], OutChannels + _weightPad[7]);

    /// <summary>Whether CPU runs pad channels to whole oneDNN blocks.</summary>
    internal bool PadsOnCpu => _weightPad[5] != 0 || _weightPad[7] != 0;

    public static long WholeBlocks(long channels) => (channels + OneDnnChannelBlock - 1) / OneDnnChannelBlock * OneDnnChannelBlock;

    public override Tensor forward(Tensor input)
    {
        if (Precision == ComputePrecision.Fp32) return Convolve(input, weight);
        using var scope = NewDisposeScope();
        var output = Convolve(MixedPrecision.Input(input, Precision), MixedPrecision.Input(weight, Precision));
        return MixedPrecision.Output(output).MoveToOuterDisposeScope();
    }

    private Tensor Convolve(Tensor input, Tensor weight)
    {
        if (input.device_type != DeviceType.CPU || (!PadsOnCpu && !SubsamplesOnCpu)) return nn.functional.conv2d(input, weight, null, _stride, _padding);
        using var scope = NewDisposeScope();
        long[] stride = _stride;
        if (SubsamplesOnCpu)
        {
            input = input.slice(2, 0, input.shape[2], _stride[0]).slice(3, 0, input.shape[3], _stride[1]);
            stride = [1, 1];
        }
        var paddedInput = _inputPad[^1] == 0 ? input : nn.functional.pad(input, _inputPad);
        var paddedWeight = PadsOnCpu ? nn.functional.pad(weight, _weightPad) : weight;
        var output = nn.functional.conv2d(paddedInput, paddedWeight, null, stride, _padding);
        return (_weightPad[^1] == 0 ? output : output.narrow(1, 0, OutChannels)).MoveToOuterDisposeScope();
    }
}

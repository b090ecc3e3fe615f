using TorchSharp;
using static TorchSharp.torch;

namespace SimClr.Core.Augmentation;

/// <summary>
/// torchvision's gaussian_blur, per view: a separable kernel of odd side k with weights exp(-x^2 / (2 sigma^2)) for
/// x in -(k-1)/2 .. (k-1)/2, normalised to sum 1, over reflect-padded planes (mirror without repeating the edge).
/// </summary>
public static class GaussianBlur
{
    /// <summary>The 1-D kernel of side <paramref name="size"/> for <paramref name="sigma"/>, in float64.</summary>
    public static double[] Kernel(int size, double sigma)
    {
        var weights = new double[size];
        double half = (size - 1) / 2.0, sum = 0;
        for (int i = 0; i < size; i++)
        {
            double x = i - half;
            weights[i] = Math.Exp(-0.5 * (x / sigma) * (x / sigma));
            sum += weights[i];
        }
        for (int i = 0; i < size; i++) weights[i] /= sum;
        return weights;
    }

    /// <summary>The reflected index of <paramref name="i"/> in [0, n): -1 -> 1, n -> n - 2.</summary>
    public static int Reflect(int i, int n) => i < 0 ? -i : i >= n ? 2 * (n - 1) - i : i;

    /// <summary>Blurs the rows of <paramref name="x"/> [m, C, S, S] whose sigma is above 0 (tensor path: grouped
    /// convolutions, one kernel per view, on the views' device).</summary>
    public static Tensor Apply(Tensor x, IReadOnlyList<ViewParameters> p, int size)
    {
        long[] members = Enumerable.Range(0, p.Count).Where(m => p[m].BlurSigma > 0).Select(m => (long)m).ToArray();
        if (members.Length == 0) return x;
        using var scope = NewDisposeScope();
        var device = x.device;
        var index = tensor(members, device: device);
        var subset = x.index_select(0, index);
        long m = members.Length, channels = x.shape[1], height = x.shape[2], width = x.shape[3];
        int radius = size / 2;
        var weights = tensor(members.SelectMany(v => Kernel(size, p[(int)v].BlurSigma).Select(w => (float)w)).ToArray(), device: device)
            .view(m, 1, size).repeat_interleave(channels, dim: 0); // [m*C, 1, k]
        var planes = subset.reshape(1, m * channels, height, width);
        planes = nn.functional.pad(planes, [radius, radius, 0, 0], PaddingModes.Reflect);
        planes = nn.functional.conv2d(planes, weights.view(m * channels, 1, 1, size), groups: m * channels);
        planes = nn.functional.pad(planes, [0, 0, radius, radius], PaddingModes.Reflect);
        planes = nn.functional.conv2d(planes, weights.view(m * channels, 1, size, 1), groups: m * channels);
        x.index_copy_(0, index, planes.view(m, channels, height, width));
        return x;
    }
}

using System.Numerics;
using static TorchSharp.torch;

namespace SimClr.Core.Augmentation;

/// <summary>
/// The CPU path of <see cref="ViewAugmenter"/>: every operation of one view fused into loops over a 12 KB buffer
/// that stays in L1 cache, views in parallel. Same semantics as the tensor path (tests hold both to the same
/// float64 references). Measured on 2 CPU cores: the tensor path is memory-bound (~40 passes over each batch) and
/// reached about 2x the seed's PIL pipeline per core; see BENCHMARKS.md for this kernel's figure.
/// </summary>
internal static unsafe class CpuViewKernel
{
    public static Tensor Apply(Tensor images, IReadOnlyList<ViewParameters> parameters, int size, double[] mean, double[] std, int threads, int blurSize = 3)
    {
        int n = (int)images.shape[0], channels = (int)images.shape[1], height = (int)images.shape[2], width = (int)images.shape[3];
        using var source = images.dtype == ScalarType.Byte ? images.contiguous() : images.mul(Runtime.Scalars.ByteMax).round_().clamp_(Runtime.Scalars.Zero, Runtime.Scalars.ByteMax).to_type(ScalarType.Byte).contiguous();
        var output = empty([n, channels, size, size], ScalarType.Float32);
        // both tensors live in native memory, so their addresses are stable for the duration of the call
        nint src, dst;
        fixed (byte* s = source.bytes) src = (nint)s;
        fixed (byte* d = output.bytes) dst = (nint)d;
        var scale = std.Select(s => (float)(1 / s)).ToArray();
        var shift = mean.Select((m, c) => (float)(-m / std[c])).ToArray();
        int inPlane = height * width, outPlane = size * size;
        Parallel.For(0, n, new ParallelOptions { MaxDegreeOfParallelism = Math.Max(1, threads) }, () => new float[channels * outPlane], (v, _, buffer) =>
        {
            fixed (float* buf = buffer)
            {
                ApplyOne((byte*)src + (long)v * channels * inPlane, channels, height, width, parameters[v], size, buf, blurSize);
                float* o = (float*)dst + (long)v * channels * outPlane;
                for (int c = 0; c < channels; c++)
                    Affine(buf + c * outPlane, o + c * outPlane, outPlane, scale[c], shift[c]);
            }
            return buffer;
        }, _ => { });
        return output;
    }

    private static void ApplyOne(byte* src, int channels, int height, int width, in ViewParameters p, int size, float* buf, int blurSize)
    {
        ResizedCropAndFlip(src, channels, height, width, p, size, buf);
        int pixels = size * size;
        if (p.Jitter)
        {
            for (int position = 0; position < 4; position++)
            {
                switch (p.Order[position])
                {
                    case JitterOp.Brightness when p.Brightness != 1: Brightness(buf, channels * pixels, (float)p.Brightness); break;
                    case JitterOp.Contrast when p.Contrast != 1: Contrast(buf, channels, pixels, (float)p.Contrast); break;
                    case JitterOp.Saturation when p.Saturation != 1 && channels == 3: Saturation(buf, pixels, (float)p.Saturation); break;
                    case JitterOp.Hue when p.Hue != 0 && channels == 3: Hue(buf, pixels, (float)p.Hue); break;
                }
            }
        }
        if (p.Grayscale && channels == 3)
        {
            for (int k = 0; k < pixels; k++)
            {
                float gray = Luma(buf[k], buf[pixels + k], buf[2 * pixels + k]);
                buf[k] = buf[pixels + k] = buf[2 * pixels + k] = gray;
            }
        }
        if (p.BlurSigma > 0) Blur(buf, channels, size, blurSize, p.BlurSigma);
    }

    /// <summary>Floats a scratch buffer may take on the stack; bigger ones (large images) come from native memory.</summary>
    private const int StackFloats = 32 * 1024;

    /// <summary>Separable Gaussian blur of each plane, reflect-padded (<see cref="GaussianBlur"/>).</summary>
    private static void Blur(float* buf, int channels, int size, int k, double sigma)
    {
        double[] kernel = GaussianBlur.Kernel(k, sigma);
        float* w = stackalloc float[k];
        for (int i = 0; i < k; i++) w[i] = (float)kernel[i];
        int r = k / 2, plane = size * size;
        bool onStack = plane <= StackFloats;
        float* temp;
        if (onStack)
        {
            float* small = stackalloc float[plane];
            temp = small;
        }
        else
        {
            temp = (float*)System.Runtime.InteropServices.NativeMemory.Alloc((nuint)plane, sizeof(float));
        }
        try
        {
            float* padded = stackalloc float[size + 2 * r];
            for (int c = 0; c < channels; c++)
            {
                float* x = buf + c * plane;
                // rows: each padded by reflection once, then one vector multiply-add per tap
                for (int y = 0; y < size; y++)
                {
                    float* row = x + y * size;
                    for (int i = -r; i < size + r; i++) padded[i + r] = row[GaussianBlur.Reflect(i, size)];
                    float* output = temp + y * size;
                    Scale(padded, w[0], output, size);
                    for (int t = 1; t < k; t++) MultiplyAdd(padded + t, w[t], output, size);
                }
                // columns: each output row is the weighted sum of k (reflected) rows of the row pass
                for (int y = 0; y < size; y++)
                {
                    float* output = x + y * size;
                    Scale(temp + GaussianBlur.Reflect(y - r, size) * size, w[0], output, size);
                    for (int t = 1; t < k; t++) MultiplyAdd(temp + GaussianBlur.Reflect(y + t - r, size) * size, w[t], output, size);
                }
            }
        }
        finally
        {
            if (!onStack) System.Runtime.InteropServices.NativeMemory.Free(temp);
        }
    }

    /// <summary>Bilinear, half-pixel centres, sample positions clamped inside the crop box (resize of the cropped image).</summary>
    private static void ResizedCropAndFlip(byte* src, int channels, int height, int width, in ViewParameters p, int size, float* buf)
    {
        int* y0 = stackalloc int[size], y1 = stackalloc int[size], x0 = stackalloc int[size], x1 = stackalloc int[size];
        float* ay = stackalloc float[size], ax = stackalloc float[size];
        Axis(p.Top, p.Height, size, width, y0, y1, ay);
        Axis(p.Left, p.Width, size, 1, x0, x1, ax);
        if (p.Flip)
        {
            for (int i = 0, j = size - 1; i < j; i++, j--)
            {
                (x0[i], x0[j]) = (x0[j], x0[i]);
                (x1[i], x1[j]) = (x1[j], x1[i]);
                (ax[i], ax[j]) = (ax[j], ax[i]);
            }
        }
        bool onStack = height * width <= StackFloats;
        float* source;
        if (onStack)
        {
            float* small = stackalloc float[height * width];
            source = small;
        }
        else
        {
            source = (float*)System.Runtime.InteropServices.NativeMemory.Alloc((nuint)(height * width), sizeof(float));
        }
        try
        {
            Resample(src, channels, height, width, p, size, buf, source, y0, y1, ay, x0, x1, ax);
        }
        finally
        {
            if (!onStack) System.Runtime.InteropServices.NativeMemory.Free(source);
        }
    }

    private static void Resample(byte* src, int channels, int height, int width, in ViewParameters p, int size, float* buf, float* source,
        int* y0, int* y1, float* ay, int* x0, int* x1, float* ax)
    {
        const float inv255 = 1f / 255f;
        float* rowMix = stackalloc float[width];
        for (int c = 0; c < channels; c++)
        {
            byte* plane = src + c * height * width;
            for (int k = 0; k < height * width; k++) source[k] = plane[k] * inv255;
            float* outPlane = buf + c * size * size;
            for (int oy = 0; oy < size; oy++)
            {
                // vertical pass over the crop's columns, then horizontal taps from that row
                Lerp(source + y0[oy] + p.Left, source + y1[oy] + p.Left, rowMix + p.Left, p.Width, ay[oy]);
                float* row = outPlane + oy * size;
                for (int ox = 0; ox < size; ox++)
                {
                    float a = rowMix[x0[ox]];
                    row[ox] = a + ax[ox] * (rowMix[x1[ox]] - a);
                }
            }
        }
    }

    /// <summary>output[k] = w * a[k] for k in [0, count).</summary>
    private static void Scale(float* a, float w, float* output, int count)
    {
        int k = 0;
        var weight = new Vector<float>(w);
        for (; k <= count - Vector<float>.Count; k += Vector<float>.Count) Vector.Store(Vector.Load(a + k) * weight, output + k);
        for (; k < count; k++) output[k] = w * a[k];
    }

    /// <summary>output[k] += w * a[k] for k in [0, count).</summary>
    private static void MultiplyAdd(float* a, float w, float* output, int count)
    {
        int k = 0;
        var weight = new Vector<float>(w);
        for (; k <= count - Vector<float>.Count; k += Vector<float>.Count) Vector.Store(Vector.Load(output + k) + Vector.Load(a + k) * weight, output + k);
        for (; k < count; k++) output[k] += w * a[k];
    }

    /// <summary>output[k] = a[k] + w * (b[k] - a[k]) for k in [0, count).</summary>
    private static void Lerp(float* a, float* b, float* output, int count, float w)
    {
        int k = 0;
        var weight = new Vector<float>(w);
        for (; k <= count - Vector<float>.Count; k += Vector<float>.Count)
        {
            var va = Vector.Load(a + k);
            Vector.Store(va + weight * (Vector.Load(b + k) - va), output + k);
        }
        for (; k < count; k++) output[k] = a[k] + w * (b[k] - a[k]);
    }

    private static void Affine(float* input, float* output, int count, float scale, float shift)
    {
        int k = 0;
        var vs = new Vector<float>(scale);
        var vb = new Vector<float>(shift);
        for (; k <= count - Vector<float>.Count; k += Vector<float>.Count) Vector.Store(Vector.Load(input + k) * vs + vb, output + k);
        for (; k < count; k++) output[k] = input[k] * scale + shift;
    }

    /// <summary>Source indices (times <paramref name="stride"/>) and weights for each output position along one axis.</summary>
    private static void Axis(int start, int length, int size, int stride, int* i0, int* i1, float* weight)
    {
        double step = (double)length / size;
        for (int o = 0; o < size; o++)
        {
            double position = Math.Clamp((o + 0.5) * step - 0.5, 0, length - 1);
            int lo = (int)position;
            i0[o] = (start + lo) * stride;
            i1[o] = (start + Math.Min(lo + 1, length - 1)) * stride;
            weight[o] = (float)(position - lo);
        }
    }

    private static float Luma(float r, float g, float b) => (float)ColorOps.RedWeight * r + (float)ColorOps.GreenWeight * g + (float)ColorOps.BlueWeight * b;

    private static float Clamp01(float v) => v < 0 ? 0 : v > 1 ? 1 : v;

    private static readonly Vector<float> Zero = Vector<float>.Zero, One = Vector<float>.One;

    private static Vector<float> Clamp01(Vector<float> v) => Vector.Min(Vector.Max(v, Zero), One);

    private static Vector<float> Luma(Vector<float> r, Vector<float> g, Vector<float> b) =>
        r * (float)ColorOps.RedWeight + g * (float)ColorOps.GreenWeight + b * (float)ColorOps.BlueWeight;

    private static void Brightness(float* buf, int count, float f)
    {
        int k = 0;
        for (; k <= count - Vector<float>.Count; k += Vector<float>.Count) Vector.Store(Clamp01(Vector.Load(buf + k) * f), buf + k);
        for (; k < count; k++) buf[k] = Clamp01(buf[k] * f);
    }

    private static void Contrast(float* buf, int channels, int pixels, float f)
    {
        double sum = 0;
        if (channels == 3)
            for (int k = 0; k < pixels; k++) sum += Luma(buf[k], buf[pixels + k], buf[2 * pixels + k]);
        else
            for (int k = 0; k < pixels; k++) sum += buf[k];
        float mean = (float)(sum / pixels);
        int count = channels * pixels, i = 0;
        var vm = new Vector<float>(mean);
        for (; i <= count - Vector<float>.Count; i += Vector<float>.Count) Vector.Store(Clamp01(vm + (Vector.Load(buf + i) - vm) * f), buf + i);
        for (; i < count; i++) buf[i] = Clamp01(mean + f * (buf[i] - mean));
    }

    private static void Saturation(float* buf, int pixels, float f)
    {
        float* rp = buf, gp = buf + pixels, bp = buf + 2 * pixels;
        int k = 0;
        for (; k <= pixels - Vector<float>.Count; k += Vector<float>.Count)
        {
            Vector<float> r = Vector.Load(rp + k), g = Vector.Load(gp + k), b = Vector.Load(bp + k);
            var gray = Luma(r, g, b);
            Vector.Store(Clamp01(gray + (r - gray) * f), rp + k);
            Vector.Store(Clamp01(gray + (g - gray) * f), gp + k);
            Vector.Store(Clamp01(gray + (b - gray) * f), bp + k);
        }
        for (; k < pixels; k++)
        {
            float r = rp[k], g = gp[k], b = bp[k];
            float gray = Luma(r, g, b);
            rp[k] = Clamp01(gray + f * (r - gray));
            gp[k] = Clamp01(gray + f * (g - gray));
            bp[k] = Clamp01(gray + f * (b - gray));
        }
    }

    /// <summary>HSV hue rotation in the compact form of <see cref="ColorOps.Hue"/>, eight pixels at a time.</summary>
    private static void Hue(float* buf, int pixels, float shift)
    {
        float* rp = buf, gp = buf + pixels, bp = buf + 2 * pixels;
        var shift6 = new Vector<float>(shift * 6);
        var six = new Vector<float>(6f);
        int k = 0;
        for (; k <= pixels - Vector<float>.Count; k += Vector<float>.Count)
        {
            Vector<float> r = Vector.Load(rp + k), g = Vector.Load(gp + k), b = Vector.Load(bp + k);
            var max = Vector.Max(r, Vector.Max(g, b));
            var chroma = max - Vector.Min(r, Vector.Min(g, b));
            var divisor = Vector.ConditionalSelect(Vector.Equals(chroma, Zero), One, chroma);
            var isR = Vector.Equals(r, max);
            var isG = Vector.AndNot(Vector.Equals(g, max), isR);
            var h6 = Vector.ConditionalSelect(isR, (g - b) / divisor,
                Vector.ConditionalSelect(isG, (b - r) / divisor + new Vector<float>(2f), (r - g) / divisor + new Vector<float>(4f))) + shift6;
            h6 -= six * Vector.Floor(h6 / six);
            Vector.Store(max - chroma * Ramp(h6 + new Vector<float>(5f), six), rp + k);
            Vector.Store(max - chroma * Ramp(h6 + new Vector<float>(3f), six), gp + k);
            Vector.Store(max - chroma * Ramp(h6 + One, six), bp + k);
        }
        for (; k < pixels; k++)
        {
            float r = rp[k], g = gp[k], b = bp[k];
            float max = MathF.Max(r, MathF.Max(g, b)), chroma = max - MathF.Min(r, MathF.Min(g, b));
            if (chroma == 0) continue; // grey: hue does not matter
            float h6 = r == max ? (g - b) / chroma : g == max ? (b - r) / chroma + 2 : (r - g) / chroma + 4;
            h6 += shift * 6;
            h6 -= 6 * MathF.Floor(h6 / 6);
            rp[k] = max - chroma * Ramp(h6 + 5);
            gp[k] = max - chroma * Ramp(h6 + 3);
            bp[k] = max - chroma * Ramp(h6 + 1);
        }
    }

    /// <summary>clamp(min(k, 4 - k), 0, 1) of k mod 6, for k in [0, 12).</summary>
    private static Vector<float> Ramp(Vector<float> k, Vector<float> six)
    {
        k = Vector.ConditionalSelect(Vector.GreaterThanOrEqual(k, six), k - six, k);
        return Clamp01(Vector.Min(k, new Vector<float>(4f) - k));
    }

    private static float Ramp(float k)
    {
        if (k >= 6) k -= 6;
        return Clamp01(MathF.Min(k, 4 - k));
    }
}

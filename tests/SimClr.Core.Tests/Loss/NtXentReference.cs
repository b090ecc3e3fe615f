namespace SimClr.Core.Tests.Loss;

/// <summary>
/// An independent float64 NT-Xent with its analytic gradient, in plain loops, to check the tensor implementation.
/// L = 1/(2N) sum_i [ -s(i, p(i)) + log sum_{k != i} exp s(i, k) ],  s(i, k) = cos(z_i, z_k) / t,  p(i) = i xor 1.
/// </summary>
internal static class NtXentReference
{
    public static (double Loss, double[][] Gradient) Compute(double[][] z, double t, bool seedClamp = false)
    {
        int n = z.Length, d = z[0].Length;
        var norms = z.Select(row => Math.Sqrt(row.Sum(v => v * v))).ToArray();
        var u = z.Select((row, i) => row.Select(v => v / norms[i]).ToArray()).ToArray();
        var s = new double[n, n];
        var clamped = new bool[n, n];
        for (int i = 0; i < n; i++)
        {
            for (int k = 0; k < n; k++)
            {
                double c = 0;
                for (int j = 0; j < d; j++) c += u[i][j] * u[k][j];
                if (seedClamp && c < 1e-7) { c = 1e-7; clamped[i, k] = true; }
                s[i, k] = c / t;
            }
        }

        double loss = 0;
        var g = new double[n, n]; // dL/ds(i, k)
        for (int i = 0; i < n; i++)
        {
            double max = double.NegativeInfinity;
            for (int k = 0; k < n; k++) if (k != i) max = Math.Max(max, s[i, k]);
            double sum = 0;
            for (int k = 0; k < n; k++) if (k != i) sum += Math.Exp(s[i, k] - max);
            int positive = i ^ 1;
            loss += -s[i, positive] + max + Math.Log(sum);
            for (int k = 0; k < n; k++)
            {
                if (k == i) continue;
                double p = Math.Exp(s[i, k] - max) / sum;
                g[i, k] = (p - (k == positive ? 1 : 0)) / n;
            }
        }
        loss /= n;

        // s(i,k) = u_i . u_k / t enters both row i and row k: dL/du_i = sum_k (g(i,k) + g(k,i)) u_k / t.
        var gradient = new double[n][];
        for (int i = 0; i < n; i++)
        {
            var du = new double[d];
            for (int k = 0; k < n; k++)
            {
                double w = (clamped[i, k] ? 0 : g[i, k]) + (clamped[k, i] ? 0 : g[k, i]);
                for (int j = 0; j < d; j++) du[j] += w * u[k][j] / t;
            }
            // through u = z / |z|: dL/dz = (du - u (u . du)) / |z|
            double dot = 0;
            for (int j = 0; j < d; j++) dot += u[i][j] * du[j];
            gradient[i] = new double[d];
            for (int j = 0; j < d; j++) gradient[i][j] = (du[j] - u[i][j] * dot) / norms[i];
        }
        return (loss, gradient);
    }
}

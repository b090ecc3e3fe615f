namespace SimClr.Core.Randomness;

/// <summary>
/// A counter-based random stream: its state is a pure function of the keys it was created from, so a draw
/// depends only on (run seed, epoch, image index, view, operation) and never on the batch, shard, chunk,
/// worker or thread it happens on. SplitMix64 (Steele et al. 2014) for mixing and stepping; platform independent.
/// </summary>
public struct CounterRng
{
    private const ulong Golden = 0x9E3779B97F4A7C15UL;
    private ulong _state;

    public CounterRng(ulong seed, ulong a = 0, ulong b = 0, ulong c = 0, ulong d = 0)
    {
        ulong s = Mix(seed + Golden);
        s = Mix(s ^ Mix(a + unchecked(2 * Golden)));
        s = Mix(s ^ Mix(b + unchecked(3 * Golden)));
        s = Mix(s ^ Mix(c + unchecked(4 * Golden)));
        s = Mix(s ^ Mix(d + unchecked(5 * Golden)));
        _state = s;
    }

    public ulong NextUInt64()
    {
        _state += Golden;
        return Mix(_state);
    }

    /// <summary>Uniform in [0, 1) with 53 random bits.</summary>
    public double NextDouble() => (NextUInt64() >> 11) * (1.0 / (1UL << 53));

    /// <summary>Uniform in [low, high).</summary>
    public double Uniform(double low, double high) => low + (high - low) * NextDouble();

    /// <summary>Uniform integer in [0, exclusiveMax), without modulo bias (rejection).</summary>
    public int NextInt(int exclusiveMax)
    {
        if (exclusiveMax <= 0) throw new ArgumentOutOfRangeException(nameof(exclusiveMax), exclusiveMax, "must be > 0");
        ulong bound = (ulong)exclusiveMax;
        ulong limit = ulong.MaxValue - ulong.MaxValue % bound;
        ulong x;
        do { x = NextUInt64(); } while (x >= limit);
        return (int)(x % bound);
    }

    /// <summary>Standard normal (Box-Muller).</summary>
    public double NextGaussian()
    {
        double u1 = 1.0 - NextDouble();
        double u2 = NextDouble();
        return Math.Sqrt(-2.0 * Math.Log(u1)) * Math.Cos(2 * Math.PI * u2);
    }

    private static ulong Mix(ulong z)
    {
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }
}

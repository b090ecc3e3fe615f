using static TorchSharp.torch;

namespace SimClr.Core.Checkpoints;

/// <summary>
/// Compares tensors read from a file with the ones a network expects, name by name: copy_ would broadcast a [1]
/// tensor into [8] without a word, and fail deep in native code for shapes that cannot broadcast, so every load
/// checks first and names the tensor and both shapes.
/// </summary>
public static class StateDictCheck
{
    /// <summary>One tensor that does not fit: what is expected and what was found (a null shape: absent).</summary>
    public sealed record Mismatch(string Name, long[]? Expected, long[]? Found, ScalarType? ExpectedType, ScalarType? FoundType)
    {
        public override string ToString() =>
            Found is null ? $"{Name} is missing"
            : Expected is null ? $"{Name} is not in this model"
            : !Found.SequenceEqual(Expected) ? $"{Name} has shape {Shape(Found)}, the model {Shape(Expected)}"
            : $"{Name} is {FoundType}, the model {ExpectedType}";
    }

    public static string Shape(IEnumerable<long> shape) => $"[{string.Join(", ", shape)}]";

    /// <summary>Every tensor of <paramref name="expected"/> that <paramref name="given"/> lacks or holds with another shape
    /// (or, with <paramref name="checkTypes"/>, dtype); with <paramref name="allowExtra"/> false, also given tensors the model lacks.</summary>
    public static List<Mismatch> Compare(IReadOnlyDictionary<string, Tensor> expected, IReadOnlyDictionary<string, Tensor> given, bool checkTypes, bool allowExtra)
    {
        var mismatches = new List<Mismatch>();
        foreach (var (name, target) in expected)
        {
            if (!given.TryGetValue(name, out var source)) mismatches.Add(new Mismatch(name, target.shape, null, target.dtype, null));
            else if (!source.shape.SequenceEqual(target.shape) || (checkTypes && source.dtype != target.dtype))
                mismatches.Add(new Mismatch(name, target.shape, source.shape, target.dtype, source.dtype));
        }
        if (!allowExtra)
        {
            foreach (var (name, source) in given)
            {
                if (!expected.ContainsKey(name)) mismatches.Add(new Mismatch(name, null, source.shape, null, source.dtype));
            }
        }
        return mismatches;
    }

    /// <summary>The first mismatches in one sentence, and how many more there are.</summary>
    public static string Describe(IReadOnlyList<Mismatch> mismatches, string prefix = "", int shown = 3) =>
        string.Join("; ", mismatches.Take(shown).Select(m => prefix + m))
        + (mismatches.Count > shown ? $"; and {mismatches.Count - shown} more tensor(s) differ" : "");
}

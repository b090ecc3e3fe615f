using SimClr.Core.Checkpoints;
using SimClr.Core.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace SimClr.Core.Tests.Checkpoints;

public sealed class CheckpointTests : IDisposable
{
    private readonly string _folder = Directory.CreateTempSubdirectory("simclr-ckpt-").FullName;

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    [Fact]
    public void A_crash_in_the_middle_of_a_write_leaves_the_previous_checkpoint_loadable()
    {
        string path = Path.Combine(_folder, "step-00000001.safetensors");
        using var weight = arange(12, dtype: ScalarType.Float32).reshape(3, 4);
        Checkpoint.Save(path, 1, "pretrain", "{}", [("w", weight)], []);
        byte[] before = File.ReadAllBytes(path);

        var e = Assert.Throws<IOException>(() => AtomicFile.Write(path, stream =>
        {
            stream.Write(new byte[1000]); // half a file ...
            throw new IOException("disk full (simulated)"); // ... then the write fails
        }));
        Assert.Equal("disk full (simulated)", e.Message);
        Assert.Equal(before, File.ReadAllBytes(path));
        using var loaded = Checkpoint.Load(path);
        Assert.True(loaded.Model["w"].equal(weight).all().item<bool>());
        Assert.Single(Directory.GetFiles(_folder)); // no temporary left behind
    }

    [Fact]
    public void A_checkpoint_never_contains_a_non_finite_value()
    {
        using var bad = tensor(new[] { 1f, float.NaN });
        var e = Assert.Throws<InvalidOperationException>(() => Checkpoint.Save(Path.Combine(_folder, "x.safetensors"), 1, "pretrain", "{}", [("w", bad)], []));
        Assert.Contains("non-finite", e.Message);
        Assert.Empty(Directory.GetFiles(_folder));
    }

    [Fact]
    public void Truncated_or_foreign_files_are_refused_with_a_message()
    {
        string path = Path.Combine(_folder, "c.safetensors");
        using var weight = ones(100);
        Checkpoint.Save(path, 3, "pretrain", "{}", [("w", weight)], []);
        byte[] bytes = File.ReadAllBytes(path);
        File.WriteAllBytes(path, bytes[..(bytes.Length - 10)]);
        Assert.Contains("does not fit", Assert.Throws<InvalidDataException>(() => Checkpoint.Load(path)).Message);
        File.WriteAllBytes(path, [1, 2, 3]);
        Assert.Contains("truncated", Assert.Throws<InvalidDataException>(() => Checkpoint.Load(path)).Message);
    }

    /// <summary>Exported from the device, re-imported into a network on it: identical outputs (within
    /// <see cref="TestDevices.Tolerance"/> on cuda, where a fresh module may get another cuDNN kernel).</summary>
    [Theory]
    [MemberData(nameof(TestDevices.All), MemberType = typeof(TestDevices))]
    public void An_exported_backbone_reimports_with_identical_outputs(string device)
    {
        manual_seed(2);
        using var source = new ResNet(new ResNetOptions(0.125));
        source.to(TestDevices.Get(device));
        using var input = randn(4, 3, 32, 32, device: TestDevices.Get(device));
        source.train();
        source.forward(input).Dispose(); // move the BN running statistics off their initial values
        source.eval();
        using var expected = source.forward(input);

        string path = Path.Combine(_folder, "backbone.safetensors");
        BackboneWeights.Export(source, path);
        var weights = BackboneWeights.Load(path);
        Assert.Equal(source.state_dict().Keys.Order(), weights.Keys.Order()); // torchvision names, nothing else
        manual_seed(99);
        using var target = new ResNet(new ResNetOptions(0.125));
        target.to(TestDevices.Get(device));
        BackboneWeights.LoadInto(target, weights, path);
        target.eval();
        using var actual = target.forward(input);
        TestDevices.AssertSame(device, actual, expected, "features after the round trip");
        foreach (var t in weights.Values) t.Dispose();
    }

    [Fact]
    public void Safetensors_layout_is_the_reference_one()
    {
        string path = Path.Combine(_folder, "t.safetensors");
        using var a = tensor(new float[] { 1, 2, 3, 4 }).reshape(2, 2);
        using var b = tensor(new long[] { 7 });
        AtomicFile.Write(path, s => SafeTensors.Write(s, [("a", a), ("b", b)], new Dictionary<string, string> { ["k"] = "v" }));
        byte[] bytes = File.ReadAllBytes(path);
        long headerLength = BitConverter.ToInt64(bytes, 0);
        Assert.Equal(0, headerLength % 8);
        string header = System.Text.Encoding.UTF8.GetString(bytes, 8, (int)headerLength);
        Assert.Contains("\"a\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,16]}", header);
        Assert.Contains("\"b\":{\"dtype\":\"I64\",\"shape\":[1],\"data_offsets\":[16,24]}", header);
        Assert.Equal(1f, BitConverter.ToSingle(bytes, 8 + (int)headerLength));
        Assert.Equal(7L, BitConverter.ToInt64(bytes, 8 + (int)headerLength + 16));
        var (tensors, metadata) = SafeTensors.Read(path);
        Assert.Equal("v", metadata["k"]);
        Assert.True(tensors["a"].equal(a).all().item<bool>());
        foreach (var t in tensors.Values) t.Dispose();
    }
}

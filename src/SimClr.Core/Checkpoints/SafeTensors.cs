using System.Buffers.Binary;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using static TorchSharp.torch;

namespace SimClr.Core.Checkpoints;

/// <summary>
/// The safetensors format (Hugging Face): an 8-byte little-endian header length, a JSON header mapping each tensor
/// name to its dtype, shape and byte range (plus a "__metadata__" map of strings), then the raw little-endian data.
/// PyTorch users load it with safetensors.torch.load_file; this project uses it for checkpoints and exports.
/// </summary>
public static class SafeTensors
{
    private const long MaxHeaderBytes = 100_000_000;

    private static readonly Dictionary<ScalarType, (string Name, int Size)> Types = new()
    {
        [ScalarType.Float32] = ("F32", 4),
        [ScalarType.Float64] = ("F64", 8),
        [ScalarType.Float16] = ("F16", 2),
        [ScalarType.BFloat16] = ("BF16", 2),
        [ScalarType.Int64] = ("I64", 8),
        [ScalarType.Int32] = ("I32", 4),
        [ScalarType.Int16] = ("I16", 2),
        [ScalarType.Int8] = ("I8", 1),
        [ScalarType.Byte] = ("U8", 1),
        [ScalarType.Bool] = ("BOOL", 1),
    };

    public static void Write(Stream stream, IEnumerable<(string Name, Tensor Tensor)> tensors, IReadOnlyDictionary<string, string>? metadata = null)
    {
        var list = tensors.Select(t => (t.Name, Tensor: t.Tensor.detach().cpu().contiguous())).ToList();
        try
        {
            var header = new JsonObject();
            if (metadata is { Count: > 0 })
                header["__metadata__"] = new JsonObject(metadata.Select(kv => KeyValuePair.Create(kv.Key, (JsonNode?)JsonValue.Create(kv.Value))));
            long offset = 0;
            foreach (var (name, tensor) in list)
            {
                if (!Types.TryGetValue(tensor.dtype, out var type)) throw new NotSupportedException($"{name}: dtype {tensor.dtype} has no safetensors name");
                long bytes = tensor.numel() * type.Size;
                header[name] = new JsonObject
                {
                    ["dtype"] = type.Name,
                    ["shape"] = new JsonArray(tensor.shape.Select(d => (JsonNode?)JsonValue.Create(d)).ToArray()),
                    ["data_offsets"] = new JsonArray(JsonValue.Create(offset), JsonValue.Create(offset + bytes)),
                };
                offset += bytes;
            }
            byte[] json = Encoding.UTF8.GetBytes(header.ToJsonString());
            int padding = (8 - json.Length % 8) % 8; // keep the data 8-byte aligned, as the reference writer does
            var length = new byte[8];
            BinaryPrimitives.WriteUInt64LittleEndian(length, (ulong)(json.Length + padding));
            stream.Write(length);
            stream.Write(json);
            for (int i = 0; i < padding; i++) stream.WriteByte((byte)' ');
            foreach (var (_, tensor) in list) stream.Write(tensor.bytes);
        }
        finally
        {
            foreach (var (_, tensor) in list) tensor.Dispose();
        }
    }

    /// <summary>Reads every tensor (CPU) and the metadata; a malformed file is an InvalidDataException naming what is wrong.</summary>
    public static (Dictionary<string, Tensor> Tensors, Dictionary<string, string> Metadata) Read(string path)
    {
        using var stream = File.OpenRead(path);
        long fileLength = stream.Length;
        Span<byte> lengthBytes = stackalloc byte[8];
        if (stream.Read(lengthBytes) != 8) throw new InvalidDataException($"{path}: truncated (no safetensors header)");
        ulong headerLength = BinaryPrimitives.ReadUInt64LittleEndian(lengthBytes);
        if (headerLength > MaxHeaderBytes || (long)headerLength > fileLength - 8)
            throw new InvalidDataException($"{path}: header length {headerLength} is impossible for a {fileLength}-byte file (truncated or not safetensors)");
        var json = new byte[headerLength];
        stream.ReadExactly(json);
        JsonObject header;
        try
        {
            header = JsonNode.Parse(json)?.AsObject() ?? throw new InvalidDataException($"{path}: empty header");
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{path}: header is not valid JSON ({e.Message})", e);
        }
        long dataStart = 8 + (long)headerLength;
        var metadata = new Dictionary<string, string>();
        var tensors = new Dictionary<string, Tensor>();
        try
        {
            foreach (var (name, node) in header)
            {
                if (name == "__metadata__")
                {
                    foreach (var (key, value) in node!.AsObject()) metadata[key] = value!.GetValue<string>();
                    continue;
                }
                var entry = node!.AsObject();
                string dtype = entry["dtype"]!.GetValue<string>();
                var type = Types.FirstOrDefault(t => t.Value.Name == dtype);
                if (type.Value.Name is null) throw new InvalidDataException($"{path}: tensor {name} has unknown dtype {dtype}");
                long[] shape = entry["shape"]!.AsArray().Select(d => d!.GetValue<long>()).ToArray();
                var offsets = entry["data_offsets"]!.AsArray().Select(d => d!.GetValue<long>()).ToArray();
                long count = shape.Aggregate(1L, (a, b) => a * b);
                if (offsets.Length != 2 || offsets[1] - offsets[0] != count * type.Value.Size || dataStart + offsets[1] > fileLength || offsets[0] < 0)
                    throw new InvalidDataException($"{path}: tensor {name} has byte range [{string.Join(", ", offsets)}] that does not fit its shape or the file (truncated?)");
                var data = new byte[offsets[1] - offsets[0]];
                stream.Position = dataStart + offsets[0];
                stream.ReadExactly(data);
                var tensor = empty(shape, type.Key);
                data.CopyTo(tensor.bytes);
                tensors[name] = tensor;
            }
        }
        catch (Exception e) when (e is InvalidOperationException or FormatException or NullReferenceException or EndOfStreamException)
        {
            foreach (var t in tensors.Values) t.Dispose();
            throw new InvalidDataException($"{path}: malformed safetensors header ({e.Message})", e);
        }
        catch
        {
            foreach (var t in tensors.Values) t.Dispose();
            throw;
        }
        return (tensors, metadata);
    }
}

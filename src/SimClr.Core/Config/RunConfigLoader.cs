using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;

namespace SimClr.Core.Config;

/// <summary>JSON <-> <see cref="RunConfig"/>: camelCase keys, enum values in kebab-case, unknown keys rejected,
/// command-line overrides as <c>path.to.key=value</c>, and every problem reported at once.</summary>
public static class RunConfigLoader
{
    public static readonly JsonSerializerOptions Json = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.CamelCase,
        DictionaryKeyPolicy = JsonNamingPolicy.CamelCase,
        UnmappedMemberHandling = JsonUnmappedMemberHandling.Disallow,
        ReadCommentHandling = JsonCommentHandling.Skip,
        AllowTrailingCommas = true,
        WriteIndented = true,
        Converters = { new JsonStringEnumConverter(JsonNamingPolicy.KebabCaseLower, allowIntegerValues: false) },
    };

    /// <summary>A config file is at most this many bytes (a bigger one is not a config: a device, a log, a data file).</summary>
    public const int MaxConfigBytes = 1 << 20;

    private static readonly JsonDocumentOptions DocumentOptions = new() { CommentHandling = JsonCommentHandling.Skip, AllowTrailingCommas = true };

    /// <summary>Reads a config file (or the defaults when <paramref name="path"/> is null), applies overrides, validates.
    /// Every problem found (unknown keys, values of the wrong type, impossible values) is reported in one error.</summary>
    public static RunConfig Load(string? path, IEnumerable<string>? overrides = null)
    {
        JsonObject root = path is null ? [] : ReadRoot(path);
        var problems = new List<string>();
        foreach (string o in overrides ?? []) ApplyOverride(root, o, problems);
        CheckKeysAndTypes(root, typeof(RunConfig), "", problems); // removes what it reports, so the rest can be validated too
        RunConfig config;
        try
        {
            config = root.Deserialize<RunConfig>(Json) ?? new RunConfig();
        }
        catch (JsonException e)
        {
            string at = string.IsNullOrEmpty(e.Path) || e.Path == "$" ? "" : e.Path.TrimStart('$', '.') + ": ";
            problems.Add(at + FriendlyJsonError(e));
            throw new ConfigException(Describe(path, problems));
        }
        problems.AddRange(config.Problems());
        if (problems.Count > 0) throw new ConfigException(Describe(path, problems));
        return config;
    }

    /// <summary>The text of a config file, refusing what cannot be one (missing, a folder, a device, over
    /// <see cref="MaxConfigBytes"/>) before reading it whole.</summary>
    public static string ReadText(string path)
    {
        if (Directory.Exists(path)) throw new ConfigException($"config file {path} is a folder; give the JSON file");
        if (!File.Exists(path)) throw new ConfigException($"config file {path} does not exist");
        try
        {
            using var stream = File.OpenRead(path);
            var buffer = new byte[MaxConfigBytes + 1];
            int total = 0, read;
            while (total < buffer.Length && (read = stream.Read(buffer, total, buffer.Length - total)) > 0) total += read;
            if (total > MaxConfigBytes)
                throw new ConfigException($"config file {path} is over {MaxConfigBytes / 1024 / 1024} MiB: not a run config (a device or another file?); give a JSON file from configs/");
            return System.Text.Encoding.UTF8.GetString(buffer, 0, total);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new ConfigException($"config file {path} cannot be read ({e.Message})");
        }
    }

    private static JsonObject ReadRoot(string path)
    {
        string text = ReadText(path);
        JsonNode? node;
        try
        {
            node = JsonNode.Parse(text, documentOptions: DocumentOptions);
        }
        catch (JsonException e)
        {
            throw new ConfigException($"{path}: not valid JSON ({e.Message})");
        }
        if (node is not JsonObject root)
        {
            string kind = node is null ? "null" : node.GetValueKind() switch
            {
                JsonValueKind.Array => "an array",
                JsonValueKind.String => "a string",
                JsonValueKind.Number => "a number",
                _ => node.ToJsonString(),
            };
            throw new ConfigException($"{path}: a config is a JSON object {{ \"key\": value, ... }} at the top level, not {kind}; see configs/ for examples");
        }
        var duplicates = DuplicateKeys(text);
        if (duplicates.Count > 0)
            throw new ConfigException(Describe(path, duplicates.Select(d => $"key '{d}' is given more than once; keep one (JSON keeps no order of precedence)").ToList()));
        return root;
    }

    /// <summary>Keys that appear twice in the same object (paths like optimizer.momentum), in order of appearance.</summary>
    private static List<string> DuplicateKeys(string text)
    {
        var duplicates = new List<string>();
        var reader = new Utf8JsonReader(System.Text.Encoding.UTF8.GetBytes(text), new JsonReaderOptions { CommentHandling = JsonCommentHandling.Skip, AllowTrailingCommas = true });
        var scopes = new Stack<(HashSet<string> Keys, string Path)>();
        string? pending = null; // the key whose value comes next
        while (reader.Read())
        {
            switch (reader.TokenType)
            {
                case JsonTokenType.StartObject:
                    string path = scopes.Count == 0 ? "" : pending is null ? scopes.Peek().Path : scopes.Peek().Path + pending + ".";
                    scopes.Push(([], path));
                    pending = null;
                    break;
                case JsonTokenType.EndObject:
                    scopes.Pop();
                    break;
                case JsonTokenType.StartArray:
                    scopes.Push((new HashSet<string>(), scopes.Count == 0 ? "" : scopes.Peek().Path + (pending ?? "") + "[]."));
                    pending = null;
                    break;
                case JsonTokenType.EndArray:
                    scopes.Pop();
                    break;
                case JsonTokenType.PropertyName:
                    pending = reader.GetString()!;
                    if (!scopes.Peek().Keys.Add(pending) && !duplicates.Contains(scopes.Peek().Path + pending)) duplicates.Add(scopes.Peek().Path + pending);
                    break;
                default:
                    pending = null;
                    break;
            }
        }
        return duplicates;
    }

    /// <summary>
    /// Checks every key of <paramref name="node"/> against <paramref name="type"/>'s properties and every value against
    /// its property's type, adding one problem per bad key or value (with "did you mean" for a misspelt key, the allowed
    /// values for an enum) and removing it, so that deserializing what is left succeeds and its values can be validated.
    /// </summary>
    private static void CheckKeysAndTypes(JsonObject node, Type type, string prefix, List<string> problems)
    {
        var properties = type.GetProperties(System.Reflection.BindingFlags.Public | System.Reflection.BindingFlags.Instance)
            .Where(p => p.GetIndexParameters().Length == 0 && !Attribute.IsDefined(p, typeof(JsonIgnoreAttribute)))
            .ToDictionary(p => JsonNamingPolicy.CamelCase.ConvertName(p.Name), StringComparer.Ordinal);
        foreach (var (key, value) in node.ToList())
        {
            string where = prefix + key;
            if (!properties.TryGetValue(key, out var property))
            {
                string? near = Spelling.Nearest(key, properties.Where(p => p.Value.CanWrite).Select(p => p.Key));
                problems.Add($"unknown key '{where}'" + (near is null ? "" : $" (did you mean '{prefix}{near}'?)"));
                node.Remove(key);
                continue;
            }
            if (!property.CanWrite) continue; // computed (written into resolved configs); ignored when read
            Type target = property.PropertyType;
            if (IsSection(target))
            {
                if (value is JsonObject section) CheckKeysAndTypes(section, target, where + ".", problems);
                else
                {
                    problems.Add($"{where} is a section: give an object {{ ... }} in the file, or set its keys one by one (--set {where}.<key>=value)");
                    node.Remove(key);
                }
                continue;
            }
            try
            {
                object? parsed = value.Deserialize(target, Json);
                if (parsed is null && Nullable.GetUnderlyingType(target) is null && target != typeof(string)) throw new JsonException("null");
            }
            catch (Exception e) when (e is JsonException or InvalidOperationException or FormatException or OverflowException)
            {
                problems.Add(WrongValue(where, target, value));
                node.Remove(key);
            }
        }
    }

    private static bool IsSection(Type type) => type.IsClass && type != typeof(string) && type.Namespace?.StartsWith("SimClr", StringComparison.Ordinal) == true;

    private static string WrongValue(string where, Type type, JsonNode? value)
    {
        string got = value is null ? "null" : value.ToJsonString();
        if (got.Length > 60) got = got[..57] + "...";
        type = Nullable.GetUnderlyingType(type) ?? type;
        if (type.IsEnum)
        {
            var allowed = Enum.GetNames(type).Select(JsonNamingPolicy.KebabCaseLower.ConvertName);
            return $"{where} must be one of {string.Join(", ", allowed)} (got {got})";
        }
        if (type == typeof(int)) return $"{where} must be a whole number from {int.MinValue} to {int.MaxValue} (got {got})";
        if (type == typeof(long)) return $"{where} must be a whole number (got {got})";
        if (type == typeof(ulong)) return $"{where} must be a whole number from 0 to {ulong.MaxValue} (got {got})";
        if (type == typeof(double) || type == typeof(float)) return $"{where} must be a number (got {got})";
        if (type == typeof(bool)) return $"{where} must be true or false (got {got})";
        if (type == typeof(string)) return $"{where} must be a string in quotes (got {got})";
        return $"{where} has a value of the wrong kind (got {got})";
    }

    public static string Serialize(RunConfig config) => JsonSerializer.Serialize(config, Json);

    /// <summary>
    /// SHA-256 of everything that makes two replicas compute the same thing (seed, model, augmentation, loss):
    /// workers refuse a coordinator whose hash differs from the one they compute from the config they were sent.
    /// </summary>
    public static string ModelHash(RunConfig config)
    {
        string canonical = JsonSerializer.Serialize(new { config.Seed, config.Model, config.Augment, config.Loss }, Json);
        return Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(canonical)));
    }

    private static string Describe(string? path, List<string> problems) =>
        $"{path ?? "config"} has {problems.Count} problem{(problems.Count == 1 ? "" : "s")}:\n  - " + string.Join("\n  - ", problems);

    private static string FriendlyJsonError(JsonException e)
    {
        string message = e.Message;
        int cut = message.IndexOf(" Path:", StringComparison.Ordinal);
        if (cut > 0) message = message[..cut];
        if (message.Contains("could not be mapped to any .NET member", StringComparison.Ordinal))
        {
            int start = message.IndexOf('\'') + 1, end = message.IndexOf('\'', start);
            return end > start ? $"unknown key '{message[start..end]}'" : message;
        }
        return message;
    }

    /// <summary>key.path=value; the value is read as JSON when it parses (numbers, true/false, null, quoted strings), else as a string.</summary>
    private static void ApplyOverride(JsonObject root, string assignment, List<string> problems)
    {
        int eq = assignment.IndexOf('=');
        if (eq <= 0)
        {
            problems.Add($"override '{assignment}' is not key=value");
            return;
        }
        string[] path = assignment[..eq].Trim().Split('.');
        string text = assignment[(eq + 1)..];
        JsonNode? value;
        try
        {
            value = JsonNode.Parse(text);
        }
        catch (JsonException)
        {
            value = JsonValue.Create(text);
        }
        JsonObject node = root;
        for (int i = 0; i < path.Length - 1; i++)
        {
            if (node[path[i]] is JsonObject child) node = child;
            else if (node[path[i]] is null)
            {
                child = [];
                node[path[i]] = child;
                node = child;
            }
            else
            {
                problems.Add($"override '{assignment}': {string.Join('.', path[..(i + 1)])} is not a section");
                return;
            }
        }
        node[path[^1]] = value;
    }
}

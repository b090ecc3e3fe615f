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

    /// <summary>Reads a config file (or the defaults when <paramref name="path"/> is null), applies overrides, validates.</summary>
    public static RunConfig Load(string? path, IEnumerable<string>? overrides = null)
    {
        JsonObject root;
        if (path is null) root = [];
        else
        {
            if (!File.Exists(path)) throw new ConfigException($"config file {path} does not exist");
            try
            {
                root = JsonNode.Parse(File.ReadAllText(path), documentOptions: new JsonDocumentOptions { CommentHandling = JsonCommentHandling.Skip, AllowTrailingCommas = true })?.AsObject()
                    ?? throw new ConfigException($"{path}: empty config");
            }
            catch (JsonException e)
            {
                throw new ConfigException($"{path}: not valid JSON ({e.Message})");
            }
        }
        var problems = new List<string>();
        foreach (string o in overrides ?? []) ApplyOverride(root, o, problems);
        if (problems.Count > 0) throw new ConfigException(Describe(path, problems));
        RunConfig config;
        try
        {
            config = root.Deserialize<RunConfig>(Json) ?? new RunConfig();
        }
        catch (JsonException e)
        {
            string where = string.IsNullOrEmpty(e.Path) || e.Path == "$" ? "" : $" at {e.Path.TrimStart('$', '.')}";
            throw new ConfigException($"{path ?? "config"}{where}: {FriendlyJsonError(e)}");
        }
        problems.AddRange(config.Problems());
        if (problems.Count > 0) throw new ConfigException(Describe(path, problems));
        return config;
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

using System.Security.Cryptography;
using System.Text;

namespace SimClr.Protocol;

/// <summary>
/// The shared secret that lets a coordinator use workers that listen beyond loopback: sent as
/// "authorization: Bearer &lt;token&gt;" on every Worker call and compared in constant time. Read from a file or the
/// SIMCLR_TOKEN environment variable, never from the command line (other users can read process arguments).
/// </summary>
public static class RunToken
{
    public const string Header = "authorization";
    public const string EnvironmentVariable = "SIMCLR_TOKEN";
    public const int MinimumLength = 16;

    /// <summary>The token from <paramref name="file"/> (first line, trimmed), else from SIMCLR_TOKEN, else null.</summary>
    public static string? Read(string? file)
    {
        string? token;
        if (file is not null)
        {
            if (!File.Exists(file)) throw new ProtocolViolation($"token file {file} does not exist");
            token = File.ReadLines(file).FirstOrDefault()?.Trim();
        }
        else
        {
            token = Environment.GetEnvironmentVariable(EnvironmentVariable)?.Trim();
        }
        if (string.IsNullOrEmpty(token)) return null;
        if (token.Length < MinimumLength)
            throw new ProtocolViolation($"the run token has {token.Length} characters; use at least {MinimumLength} (e.g. openssl rand -hex 32)");
        return token;
    }

    public static string BearerValue(string token) => "Bearer " + token;

    /// <summary>True when <paramref name="headerValue"/> carries exactly <paramref name="token"/> (constant time).</summary>
    public static bool Matches(string? headerValue, string token)
    {
        if (headerValue is null) return false;
        var expected = Encoding.UTF8.GetBytes(BearerValue(token));
        var given = Encoding.UTF8.GetBytes(headerValue);
        return CryptographicOperations.FixedTimeEquals(expected, given);
    }
}

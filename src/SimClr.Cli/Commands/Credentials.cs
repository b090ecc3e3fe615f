using System.Security.Cryptography.X509Certificates;
using SimClr.Core.Config;
using SimClr.Protocol;

namespace SimClr.Cli.Commands;

/// <summary>
/// The run token and TLS files named on the command line. One that is missing or cannot be read is refused input
/// (a <see cref="ConfigException"/>, exit code 2), not a protocol fault of a worker (the <see cref="ProtocolViolation"/>
/// that <see cref="RunToken"/> and <see cref="Tls"/> throw, exit code 4 during a run).
/// </summary>
internal static class Credentials
{
    /// <summary>The run token of --token-file, else of the environment; null when neither gives one.</summary>
    public static string? Token(string? file) => AsInput(() => RunToken.Read(file));

    /// <summary>The certificate of --tls-ca to trust besides the system's; null without one.</summary>
    public static X509Certificate2? Trusted(string? path) => path is null ? null : AsInput(() => Tls.LoadTrusted(path));

    /// <summary>Reads --tls-cert (and --tls-key) once, so a bad file is named now, not as a Kestrel error.</summary>
    public static void CheckServerCertificate(string certificate, string? key) => AsInput(() =>
    {
        Tls.LoadServerCertificate(certificate, key).Dispose();
        return true;
    });

    private static T AsInput<T>(Func<T> read)
    {
        try
        {
            return read();
        }
        catch (ProtocolViolation e)
        {
            throw new ConfigException(e.Message);
        }
    }
}

using System.Net.Security;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace SimClr.Protocol;

/// <summary>
/// TLS for the worker channel, on when certificate paths are configured: a worker serves a PEM certificate and key
/// (<c>simclr worker --tls-cert --tls-key</c>); the coordinator trusts the system's roots and, with
/// <c>--tls-ca</c>, a certificate of the user's own (their private CA, or the workers' self-signed certificate).
/// The run token still authenticates every call; TLS keeps it and the tensors private on the network.
/// </summary>
public static class Tls
{
    /// <summary>The worker's certificate with its private key, or a clear error naming what is wrong.</summary>
    public static X509Certificate2 LoadServerCertificate(string certificatePath, string? keyPath)
    {
        if (!File.Exists(certificatePath)) throw new ProtocolViolation($"TLS certificate {certificatePath}: no such file");
        if (keyPath is not null && !File.Exists(keyPath)) throw new ProtocolViolation($"TLS key {keyPath}: no such file");
        try
        {
            var certificate = X509Certificate2.CreateFromPemFile(certificatePath, keyPath);
            if (!certificate.HasPrivateKey) throw new ProtocolViolation($"TLS certificate {certificatePath} has no private key: give it with --tls-key");
            return certificate;
        }
        catch (CryptographicException e)
        {
            throw new ProtocolViolation($"TLS certificate {certificatePath}{(keyPath is null ? "" : $" / key {keyPath}")} could not be read as PEM: {e.Message}");
        }
    }

    /// <summary>The certificate (PEM or DER) a coordinator should trust besides the system's roots.</summary>
    public static X509Certificate2 LoadTrusted(string path)
    {
        if (!File.Exists(path)) throw new ProtocolViolation($"TLS CA certificate {path}: no such file");
        try
        {
            return X509CertificateLoader.LoadCertificateFromFile(path);
        }
        catch (CryptographicException e)
        {
            throw new ProtocolViolation($"TLS CA certificate {path} could not be read: {e.Message}");
        }
    }

    /// <summary>Accepts what the system trusts, or a chain ending at <paramref name="trusted"/>; the host name must match either way.</summary>
    public static RemoteCertificateValidationCallback Validator(X509Certificate2? trusted) => (_, certificate, _, errors) =>
    {
        if (errors == SslPolicyErrors.None) return true;
        if (trusted is null || certificate is null || errors != SslPolicyErrors.RemoteCertificateChainErrors) return false;
        using var chain = new X509Chain();
        chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        chain.ChainPolicy.CustomTrustStore.Add(trusted);
        chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        using var presented = X509CertificateLoader.LoadCertificate(certificate.GetRawCertData());
        return chain.Build(presented);
    };
}

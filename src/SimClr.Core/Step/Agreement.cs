namespace SimClr.Core.Step;

/// <summary>How an applied step shows that the replicas still agree: not at all (one replica), by the parameters'
/// fingerprint (every step: one read on the device), or by the SHA-256 of all parameters (at checkpoints and every
/// checksumEverySteps: a copy of them all to the host).</summary>
public enum Agreement
{
    None,
    Fingerprint,
    Full,
}

namespace SimClr.Core.Step;

/// <summary>The gradient of an <see cref="IReplicaEndpoint.ApplyStepAsync"/>: its source, and with <see cref="GradientSource.Sent"/>
/// the float32 sum in the flat layout.</summary>
public sealed record StepGradient
{
    private StepGradient(GradientSource source, byte[]? sum)
    {
        Source = source;
        Sum = sum;
    }

    public GradientSource Source { get; }

    /// <summary>The sent sum (float32 bytes, parameters in state order); null for the other sources.</summary>
    public byte[]? Sum { get; }

    public static StepGradient Own { get; } = new(GradientSource.Own, null);

    public static StepGradient Ring { get; } = new(GradientSource.Ring, null);

    public static StepGradient Sent(byte[] sum) => new(GradientSource.Sent, sum ?? throw new ArgumentNullException(nameof(sum)));
}

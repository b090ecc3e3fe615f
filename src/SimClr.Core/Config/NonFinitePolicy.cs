namespace SimClr.Core.Config;

/// <summary>What a step with a non-finite loss or gradient does (it is never applied either way).</summary>
public enum NonFinitePolicy
{
    /// <summary>Skip the step (the batch is passed over, the weights stay as they were), count it, and stop once
    /// <see cref="FaultOptions.MaxSkippedSteps"/> is exceeded.</summary>
    Skip,

    /// <summary>Stop at the first one.</summary>
    Stop,
}

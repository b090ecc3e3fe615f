namespace SimClr.Core.Optim;

/// <summary>Linear warm-up from 0 to the peak over the warm-up steps, then cosine decay to 0 at the last step (SimCLR).</summary>
public sealed record LearningRateSchedule(double Peak, long WarmupSteps, long TotalSteps)
{
    public double At(long step)
    {
        if (step < WarmupSteps) return Peak * (step + 1) / WarmupSteps;
        long decay = Math.Max(1, TotalSteps - WarmupSteps);
        double progress = Math.Min(1.0, (double)(step - WarmupSteps) / decay);
        return Peak * 0.5 * (1 + Math.Cos(Math.PI * progress));
    }
}

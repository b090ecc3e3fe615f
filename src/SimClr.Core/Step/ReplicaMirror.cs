namespace SimClr.Core.Step;

/// <summary>
/// This process's own replica kept in step with the run's: in a distributed run it is the replicas' starting state
/// (pushed to them before the first step, after any resume), and before every checkpoint and evaluation it takes the
/// state of replica 0 (all replicas are bit-identical in their parameters; replica 0's BatchNorm running statistics are
/// kept, as PyTorch DDP broadcasts rank 0's). In a single-process run it is the run's replica, and nothing moves.
/// </summary>
public sealed class ReplicaMirror(LocalReplicaEndpoint self, ReplicaGroup group, bool remote)
{
    private long _applied; // steps applied by the replicas
    private long _pulledAt = -1; // _applied when this replica last took replica 0's state

    public LocalReplicaEndpoint Self { get; } = self;

    /// <summary>Whether the replicas live elsewhere (workers), so that state has to move.</summary>
    public bool Remote { get; } = remote;

    /// <summary>The replicas applied a step: this process's copy is behind until the next <see cref="Pull"/>.</summary>
    public void Applied() => _applied++;

    /// <summary>Sends this process's state to every active replica (a no-op in single-process runs).</summary>
    public void PushStart()
    {
        if (!Remote) return;
        Push(group.Active, "the starting state");
        _pulledAt = _applied;
    }

    /// <summary>Brings this process's replica up to date with replica 0 (a no-op when it is, or in single-process runs).</summary>
    public void Pull()
    {
        if (!Remote || _pulledAt == _applied) return;
        var state = group.Active[0].SaveStateAsync(CancellationToken.None).GetAwaiter().GetResult();
        Self.Session.LoadState(state);
        _pulledAt = _applied;
    }

    /// <summary>Gives a worker that is back the run's state (<see cref="ReplicaGroup.Bring"/>).</summary>
    public void Bring(IReplicaEndpoint fresh)
    {
        Pull(); // this process's replica now holds the survivors' state
        Push([fresh], "the state");
    }

    /// <summary>Loads this process's state into <paramref name="to"/>; each must report the same parameter checksum.</summary>
    private void Push(IReadOnlyList<IReplicaEndpoint> to, string what)
    {
        var state = Self.Session.SaveState();
        var checksums = Task.WhenAll(to.Select(r => r.LoadStateAsync(state, CancellationToken.None))).GetAwaiter().GetResult();
        string expected = Self.Replica.Checksum();
        for (int w = 0; w < checksums.Length; w++)
        {
            if (checksums[w] != expected)
                throw new ReplicaDivergenceException($"{to[w].Name} loaded {what} but reports checksum {checksums[w]}, expected {expected}");
        }
    }
}

using SimClr.Core.Config;

namespace SimClr.Core.Step;

/// <summary>
/// The replicas of a run and what became of them: the active ones in rank order (replica 0 first), the lost ones,
/// and the lost workers that come back. A lost worker is probed in the background (one probe at a time, at most every
/// faults.rejoinSeconds), so a hung worker never stalls a step; one that is back receives the run's state
/// (<see cref="Bring"/>) and takes its old rank, so shards and the gradient sum keep their order.
/// </summary>
public sealed class ReplicaGroup(IReadOnlyList<IReplicaEndpoint> replicas, FaultOptions? faults = null, Action<string>? log = null)
{
    private readonly List<IReplicaEndpoint> _active = [.. replicas];
    private readonly List<IReplicaEndpoint> _lost = [];
    private readonly Dictionary<IReplicaEndpoint, int> _rank = replicas.Select((r, i) => (r, i)).ToDictionary(x => x.r, x => x.i);
    private readonly Dictionary<IReplicaEndpoint, (DateTime Started, Task<IReplicaEndpoint?> Probe)> _probes = [];
    private readonly FaultOptions _faults = faults ?? new FaultOptions();

    /// <summary>The replicas still in the run, in rank order.</summary>
    public IReadOnlyList<IReplicaEndpoint> Active => _active;

    /// <summary>Loads the run's state into a worker that is back (throws <see cref="ReplicaLostException"/> or
    /// <see cref="ReplicaDivergenceException"/> when it cannot take it). Without it, lost workers stay lost.</summary>
    public Action<IReplicaEndpoint>? Bring { get; set; }

    /// <summary>Takes <paramref name="lost"/> out of the run (their endpoints are disposed).</summary>
    public void Drop(IEnumerable<IReplicaEndpoint> lost)
    {
        foreach (var replica in lost)
        {
            if (!_active.Remove(replica)) continue;
            replica.Dispose();
            _lost.Add(replica);
        }
    }

    /// <summary>Takes <paramref name="replacement"/> (already holding the run's state) in place of the lost
    /// <paramref name="lost"/>, at its old rank: it gets shards from the next step on.</summary>
    public void Admit(IReplicaEndpoint lost, IReplicaEndpoint replacement)
    {
        if (!_lost.Remove(lost)) throw new ArgumentException($"{lost.Name} is not a lost replica", nameof(lost));
        _rank[replacement] = _rank[lost];
        _active.Add(replacement);
        _active.Sort((a, b) => _rank[a].CompareTo(_rank[b]));
    }

    /// <summary>Admits the lost workers whose probe found them back; starts or restarts the probes of the others.</summary>
    public void TryRejoin(long step)
    {
        if (_lost.Count == 0 || _faults.RejoinSeconds <= 0 || Bring is null) return;
        foreach (var lost in _lost.ToList())
        {
            if (!_probes.TryGetValue(lost, out var probe))
            {
                _probes[lost] = (DateTime.UtcNow, lost.TryReconnectAsync(CancellationToken.None));
                continue;
            }
            if (!probe.Probe.IsCompleted) continue;
            var fresh = probe.Probe.IsCompletedSuccessfully ? probe.Probe.Result : null;
            if (fresh is null)
            {
                if (DateTime.UtcNow - probe.Started >= TimeSpan.FromSeconds(_faults.RejoinSeconds))
                    _probes[lost] = (DateTime.UtcNow, lost.TryReconnectAsync(CancellationToken.None));
                continue;
            }
            _probes.Remove(lost);
            try
            {
                Bring(fresh);
                Admit(lost, fresh);
                log?.Invoke($"{fresh.Name} rejoined at step {step}: {_active.Count} worker(s)");
            }
            catch (Exception e) when (e is ReplicaLostException or ReplicaDivergenceException)
            {
                log?.Invoke($"{lost.Name} answered but could not rejoin: {e.Message}");
                fresh.Dispose();
            }
        }
    }

    /// <summary>Below faults.minWorkers: probes the lost workers for up to faults.joinWaitSeconds; true once enough are back.</summary>
    public bool WaitForJoiners(long step)
    {
        if (_faults.JoinWaitSeconds <= 0 || _faults.RejoinSeconds <= 0 || _active.Count == 0) return false;
        log?.Invoke($"{_active.Count} worker(s) left, below faults.minWorkers ({_faults.MinWorkers}): waiting up to {_faults.JoinWaitSeconds:0.#} s for workers to rejoin");
        var until = DateTime.UtcNow + TimeSpan.FromSeconds(_faults.JoinWaitSeconds);
        while (DateTime.UtcNow < until)
        {
            TryRejoin(step);
            if (_active.Count >= _faults.MinWorkers) return true;
            Thread.Sleep(100);
        }
        log?.Invoke($"no worker came back within {_faults.JoinWaitSeconds:0.#} s (faults.joinWaitSeconds): stopping");
        return false;
    }
}

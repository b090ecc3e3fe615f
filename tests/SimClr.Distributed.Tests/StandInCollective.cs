using System.Collections.Concurrent;
using System.Security.Cryptography;
using SimClr.Core.Runtime;
using static TorchSharp.torch;

namespace SimClr.Distributed.Tests;

/// <summary>
/// NCCL's part in a step played in this process, for workers hosted by a test: each worker gets its own
/// <see cref="StandInCollective"/> (as each process loads its own libnccl), and they meet in one <see cref="StandInFabric"/>.
/// Like NCCL: a communicator forms when every rank has joined with the same id; a rank's k-th all-reduce meets the other
/// ranks' k-th, and all get the sum in rank order (in the buffer's dtype, as NCCL sums in float32); an abort on any rank
/// fails what every rank waits for, and the communicator is dead after. Every id made, join and abort is logged.
/// </summary>
internal sealed class StandInFabric
{
    private readonly ConcurrentDictionary<string, Group> _groups = new();

    public ConcurrentQueue<string> Log { get; } = new();

    /// <summary>How long a rank waits for the others before it fails (as NCCL would hang, a test must not).</summary>
    public TimeSpan Patience { get; init; } = TimeSpan.FromSeconds(60);

    public IDeviceCollective For(string worker) => new StandInCollective(this, worker);

    /// <summary>All-reduces still to fail as a broken link would (each kills its communicator: every rank's call fails).</summary>
    public int BrokenSums;

    public string[] Entries(string kind) => Log.Where(e => e.StartsWith(kind + " ", StringComparison.Ordinal)).ToArray();

    private sealed class StandInCollective(StandInFabric fabric, string worker) : IDeviceCollective
    {
        public string Description => "stand-in collective (this test process)";

        public string? Problem(Device device) => null;

        public byte[] NewUniqueId()
        {
            byte[] id = RandomNumberGenerator.GetBytes(128);
            fabric.Log.Enqueue($"id {worker} {Hex(id)}");
            return id;
        }

        public IDeviceCommunicator Join(byte[] uniqueId, int ranks, int rank, Device device)
        {
            var group = fabric._groups.GetOrAdd(Hex(uniqueId), _ => new Group(ranks, fabric.Patience));
            fabric.Log.Enqueue($"join {worker} {Hex(uniqueId)} {rank}/{ranks}");
            group.Arrive(rank);
            return new Communicator(fabric, group, worker, Hex(uniqueId), rank, ranks);
        }
    }

    private static string Hex(byte[] id) => Convert.ToHexString(id.AsSpan(0, 6)).ToLowerInvariant();

    private sealed class Communicator(StandInFabric fabric, Group group, string worker, string id, int rank, int ranks) : IDeviceCommunicator
    {
        private int _calls;

        public int Rank => rank;

        public int Ranks => ranks;

        public bool Aborted => group.Dead;

        public void AllReduceSum(Tensor buffer)
        {
            if (Interlocked.Decrement(ref fabric.BrokenSums) >= 0)
            {
                group.Kill();
                fabric.Log.Enqueue($"broke {worker} {id}");
                throw new DeviceCollectiveException("NCCL error 6 (remote process exited or there was a network error) (stand-in)");
            }
            var host = buffer.cpu().to_type(ScalarType.Float64).data<double>().ToArray();
            var sum = group.Reduce(_calls++, rank, host, buffer.dtype == ScalarType.Float32);
            using var result = tensor(sum, ScalarType.Float64).to_type(buffer.dtype).to(buffer.device);
            buffer.copy_(result);
        }

        public void Abort()
        {
            if (group.Kill()) fabric.Log.Enqueue($"abort {worker} {id}");
        }

        public void Dispose()
        {
        }
    }

    /// <summary>One communicator: its ranks' arrivals and their all-reduces, call by call.</summary>
    private sealed class Group(int ranks, TimeSpan patience)
    {
        private readonly object _gate = new(); // Monitor's: Wait and PulseAll
        private readonly Dictionary<int, double[]?[]> _calls = [];
        private readonly Dictionary<int, double[]> _sums = [];
        private int _arrived;

        public bool Dead { get; private set; }

        public bool Kill()
        {
            lock (_gate)
            {
                if (Dead) return false;
                Dead = true;
                Monitor.PulseAll(_gate);
                return true;
            }
        }

        public void Arrive(int rank)
        {
            lock (_gate)
            {
                _arrived++;
                Monitor.PulseAll(_gate);
                Wait(() => _arrived >= ranks, "every rank to join");
            }
        }

        /// <summary>The sum over the ranks of their <paramref name="call"/>-th buffers, added in rank order in float32
        /// (<paramref name="float32"/>) or float64.</summary>
        public double[] Reduce(int call, int rank, double[] values, bool float32)
        {
            lock (_gate)
            {
                if (Dead) throw new DeviceCollectiveException("the communicator was aborted");
                if (!_calls.TryGetValue(call, out var parts)) _calls[call] = parts = new double[]?[ranks];
                parts[rank] = values;
                if (parts.All(p => p is not null))
                {
                    if (parts.Any(p => p!.Length != values.Length)) throw new DeviceCollectiveException("ranks gave buffers of different sizes");
                    var sum = new double[values.Length];
                    for (int i = 0; i < sum.Length; i++)
                    {
                        if (float32)
                        {
                            float s = 0;
                            foreach (var p in parts) s += (float)p![i];
                            sum[i] = s;
                        }
                        else
                        {
                            double s = 0;
                            foreach (var p in parts) s += p![i];
                            sum[i] = s;
                        }
                    }
                    _sums[call] = sum;
                    Monitor.PulseAll(_gate);
                }
                Wait(() => _sums.ContainsKey(call), $"every rank's all-reduce {call}");
                return _sums[call];
            }
        }

        private void Wait(Func<bool> done, string what)
        {
            var deadline = DateTime.UtcNow + patience;
            while (!done())
            {
                if (Dead) throw new DeviceCollectiveException($"the communicator was aborted while waiting for {what}");
                var left = deadline - DateTime.UtcNow;
                if (left <= TimeSpan.Zero) throw new DeviceCollectiveException($"waited {patience.TotalSeconds:F0} s for {what}");
                Monitor.Wait(_gate, left);
            }
        }
    }
}

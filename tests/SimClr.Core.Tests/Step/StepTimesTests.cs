using System.Diagnostics;
using System.Text.Json;
using SimClr.Core.Config;
using SimClr.Core.Replica;
using SimClr.Core.Runtime;
using SimClr.Core.Stages;
using SimClr.Core.Step;
using SimClr.Core.Tests.Stages;

namespace SimClr.Core.Tests.Step;

/// <summary>The step's time breakdown (issue 7): written by every run into metrics.jsonl, phases that add up to the step.</summary>
public sealed class StepTimesTests : IDisposable
{
    private readonly string _runs = Directory.CreateTempSubdirectory("simclr-times-").FullName;

    public void Dispose() => Directory.Delete(_runs, recursive: true);

    /// <summary>Checks the "step" records of a run's metrics.jsonl; returns them.</summary>
    public static List<JsonElement> AssertBreakdown(string metricsFile, double runWallMs)
    {
        var steps = File.ReadAllLines(metricsFile).Select(l => JsonDocument.Parse(l).RootElement)
            .Where(l => l.GetProperty("kind").GetString() == "step").ToList();
        Assert.NotEmpty(steps);
        double timedMs = 0;
        foreach (var record in steps)
        {
            double Get(string key) => record.TryGetProperty(key, out var v) ? v.GetDouble() : throw new Xunit.Sdk.XunitException($"no {key} in {record}");
            double step = Get("time_step_ms");
            Assert.True(step > 0, $"time_step_ms {step}");
            double sum = 0;
            foreach (string phase in StepTimes.CoordinatorPhases.Concat(StepTimes.ReplicaPhases))
            {
                double ms = Get($"time_{phase}_ms");
                Assert.True(ms >= 0, $"time_{phase}_ms is {ms}");
                sum += ms;
                if (StepTimes.ReplicaPhases.Contains(phase))
                {
                    double max = Get($"time_{phase}_max_ms");
                    Assert.True(max >= ms - 1e-3 && max <= step + 1e-3, $"time_{phase}_max_ms {max}, mean {ms}, step {step}");
                }
            }
            // the parts are disjoint pieces of the step: they add up to it (rounding to 1e-6 ms aside), never more
            Assert.True(sum <= step * 1.001 + 0.01, $"the phases add up to {sum} ms, the step took {step} ms");
            Assert.True(sum >= step * 0.999 - 0.01, $"the phases add up to {sum} ms of the step's {step} ms");
            Assert.True(Get("time_forward_ms") > 0 && Get("time_backward_ms") > 0 && Get("time_optimizer_ms") > 0 && Get("time_augment_ms") > 0,
                $"a replica phase is missing: {record}");
            Assert.True(Get("time_compute_max_ms") <= step + 1e-3);
            Assert.InRange(Get("slowest_replica"), 0, 63);
            timedMs += step * Get("timed_steps");
        }
        Assert.True(timedMs <= runWallMs, $"the steps' times add up to {timedMs} ms, the whole run took {runWallMs} ms");
        return steps;
    }

    [Fact]
    public async Task A_single_process_run_writes_the_breakdown_of_its_steps_and_the_phases_add_up_to_the_step()
    {
        // two chunks: gradient caching, so the re-forward is timed too; a record every 3 steps averages those steps
        var config = TinyRuns.Config(Stage.Pretrain, _runs, "times") with
        {
            Epochs = 2,
            KnnEveryEpochs = 0,
            CheckpointEverySteps = 0,
            LogEverySteps = 3,
            Batching = new BatchingOptions { Chunks = 2 },
        };
        var clock = Stopwatch.StartNew();
        var result = await StageRunner.RunAsync(config, RunDirectory.Create(config), SilentObserver.Instance);
        double wall = clock.Elapsed.TotalMilliseconds;
        Assert.True(result.Completed);
        var steps = AssertBreakdown(Path.Combine(result.RunPath, "metrics.jsonl"), wall);
        Assert.Equal([1.0, 2, 3], steps.Select(s => s.GetProperty("timed_steps").GetDouble())); // step 1 alone, then 2-3, then 4-6
        foreach (var s in steps)
        {
            Assert.True(s.GetProperty("time_reforward_ms").GetDouble() > 0, $"no re-forward time with chunks: {s}");
            double step = s.GetProperty("time_step_ms").GetDouble();
            Assert.True(s.GetProperty("time_idle_ms").GetDouble() < 0.05 * step + 2, $"one replica waits for nobody: {s}"); // (bookkeeping aside)
            Assert.True(s.GetProperty("time_reduce_ms").GetDouble() < 1, $"one replica's gradient is not summed: {s}");
            Assert.Equal(0, s.GetProperty("slowest_replica").GetDouble());
        }
    }

    [Fact]
    public void Replica_times_cross_the_wire_as_text_and_a_bad_trailer_is_ignored()
    {
        var times = new ReplicaTimes(1.25, 3.5, 0, 7.125, 0.75, 0.5, 2.5) { Syncs = new SyncCounts(1, 3, 0) };
        Assert.Equal("augment=1.25;forward=3.5;reforward=0;backward=7.125;optimizer=0.75;serialize=0.5;ring=2.5;syncs_read=1;syncs_transport=3;syncs_timer=0",
            times.Format());
        Assert.Equal(times, ReplicaTimes.Parse(times.Format()));
        Assert.Equal(SyncCounts.None, ReplicaTimes.Parse("augment=2")!.Syncs); // an older worker's trailer: no counts
        Assert.Equal(new ReplicaTimes(2, 0, 0, 0, 0, 0), ReplicaTimes.Parse("augment=2;future=9")); // newer fields ignored, missing 0
        Assert.Null(ReplicaTimes.Parse(null));
        Assert.Null(ReplicaTimes.Parse("augment=-1"));
        Assert.Null(ReplicaTimes.Parse("augment=NaN"));
        Assert.Null(ReplicaTimes.Parse("nonsense"));
        Assert.Equal(15.625, times.TotalMs);
    }

    [Fact]
    public void Phases_timed_without_waiting_for_the_device_are_marked_and_left_out_of_the_breakdown()
    {
        // a timer for an asynchronous device (its synchronisation counted here): marks wait only while Synchronizing
        int waits = 0;
        var timer = new PhaseTimer(() => waits++);
        timer.Add(ReplicaPhase.Forward, timer.Mark());
        Assert.Equal(2, waits);
        Assert.False(timer.Take().Unsynchronized);
        timer.Synchronizing = false;
        timer.Add(ReplicaPhase.Forward, timer.Mark());
        Assert.Equal(2, waits);
        var unsynchronized = timer.Take();
        Assert.True(unsynchronized.Unsynchronized);
        Assert.True(ReplicaTimes.Parse(unsynchronized.Format())!.Unsynchronized); // it crosses the wire
        Assert.False(new PhaseTimer().Take().Unsynchronized); // nothing to wait for (the CPU): always the device's times

        // such a step has its wall time and the coordinator's parts in metrics.jsonl, not the replicas' phases
        var exact = new StepTimes(10, 1, 1, 0, [new ReplicaTimes(1, 4, 0, 3, 0, 0)], [0], [0]);
        var queued = exact with { Replicas = [new ReplicaTimes(0.1, 0.2, 0, 0.1, 0, 0) { Unsynchronized = true }] };
        Assert.Contains("time_forward_ms", exact.ToMetrics().Keys);
        Assert.DoesNotContain("time_forward_ms", queued.ToMetrics().Keys);
        Assert.Equal(10, queued.ToMetrics()["time_step_ms"]);

        // the log averages each part over the steps that have it
        var config = TinyRuns.Config(Stage.Pretrain, _runs, "sampled");
        var run = RunDirectory.Create(config);
        using (var log = new StepLog(run, "pretrain", logEverySteps: 2, _ => ""))
        {
            log.Applied(1, first: false, new StepResult(StepStatus.Applied, 1, null, new Dictionary<string, double>()) { Times = exact }, 0.1, 1, 0);
            log.Applied(2, first: false, new StepResult(StepStatus.Applied, 1, null, new Dictionary<string, double>()) { Times = queued with { StepMs = 6 } }, 0.1, 1, 0);
        }
        var record = JsonDocument.Parse(File.ReadAllLines(Path.Combine(run.Path, "metrics.jsonl")).Single()).RootElement;
        Assert.Equal(8, record.GetProperty("time_step_ms").GetDouble()); // (10 + 6) / 2
        Assert.Equal(4, record.GetProperty("time_forward_ms").GetDouble()); // from the one step that timed it
        Assert.Equal((2.0, 1.0), (record.GetProperty("timed_steps").GetDouble(), record.GetProperty("phase_timed_steps").GetDouble()));
    }
}

using SimClr.Core.Checkpoints;
using SimClr.Core.Config;
using SimClr.Core.Data;
using SimClr.Core.Step;
using static TorchSharp.torch;

namespace SimClr.Core.Stages;

/// <summary>Runs one stage from a validated config, in three parts: prepare (device, threads, data), join the workers
/// (the caller's: Core has no network), run (dispatch to the stage, resume).</summary>
public static class StageRunner
{
    /// <summary>A device this build and machine can use, or a ConfigException saying what to do.</summary>
    public static void CheckDevice(string device)
    {
        Device parsed;
        try
        {
            parsed = new Device(device);
        }
        catch (Exception e) when (e is ArgumentException or FormatException or InvalidOperationException)
        {
            throw new ConfigException($"device '{device}' is not a device name (cpu, cuda, cuda:1, ...)");
        }
        if (parsed.type == TorchSharp.DeviceType.CUDA)
        {
            if (!cuda.is_available())
                throw new ConfigException($"device '{device}' asked for, but CUDA is not available: this build uses the CPU libtorch, or the machine has no GPU. "
                    + "On a GPU box build with -p:TorchSharpPackage=TorchSharp-cuda-linux; here, add --set device=cpu (and a smaller model.width).");
            if (parsed.index >= cuda.device_count())
                throw new ConfigException($"device '{device}' asked for, but this machine has {cuda.device_count()} CUDA device(s)");
        }
        else if (parsed.type != TorchSharp.DeviceType.CPU)
        {
            throw new ConfigException($"device '{device}' is not supported; use cpu or cuda[:N]");
        }
    }

    /// <summary>The device this process computes on (<see cref="CoordinatorOptions.Resolve"/>): the replica's in a
    /// single-process run, the coordinator's (its copy of the model and the global loss) in a run with workers.</summary>
    public static string LocalDevice(RunConfig config, bool withWorkers) => config.Coordinator.Resolve(config.Device, withWorkers, cuda.is_available());

    /// <summary>Checks the devices this process will use: the run's device in a single-process run, and the
    /// coordinator's (with workers, the workers' devices are theirs to check).</summary>
    public static void CheckDevices(RunConfig config, bool withWorkers)
    {
        if (!withWorkers) CheckDevice(config.Device);
        CheckDevice(LocalDevice(config, withWorkers));
    }

    /// <summary>Checks the devices, sets the threads, loads the data and takes the labelled subset; fails early (a
    /// <see cref="ConfigException"/>) when the batch does not fit the data.</summary>
    public static async Task<PreparedStage> PrepareAsync(RunConfig config, RunDirectory run, ITrainingObserver observer, CancellationToken cancel = default,
        bool withWorkers = false)
    {
        CheckDevices(config, withWorkers);
        if (config.Threads > 0) set_num_threads(config.Threads);
        int reported = 0;
        var progress = new Progress<(long Done, long? Total)>(p =>
        {
            // a line every 10%: decoding an image folder or downloading takes minutes
            int tenth = p.Total is > 0 ? (int)(10 * p.Done / p.Total.Value) : 0;
            if (tenth > Volatile.Read(ref reported))
            {
                Volatile.Write(ref reported, tenth);
                observer.Message($"{config.Data.Name}: {p.Done} of {p.Total} ({tenth * 10}%)");
            }
        });
        var data = await config.Data.LoadAsync(progress, cancel, observer.Message);
        observer.Message($"{config.Stage}: {data.Train.Name} ({data.Train.Count} train, {data.Test.Count} test, {data.Train.Channels}x{data.Train.Height}x{data.Train.Width}), run directory {run.Path}");
        ImageDataSet? subset = null;
        try
        {
            (var train, subset) = PreparedStage.TrainingImages(config, data, observer.Message);
            if (config.Stage is not (Stage.LinearEval or Stage.KnnEval) && config.BatchSize > train.Count)
                throw new ConfigException($"batchSize {config.BatchSize} is larger than the {train.Count} training images this run has"
                    + (subset is null ? "" : $" at labelFraction {config.LabelFraction}") + "; lower batchSize");
            return new PreparedStage(config, data, train, subset);
        }
        catch
        {
            subset?.Dispose();
            data.Dispose();
            throw;
        }
    }

    /// <summary>Runs a prepared stage: in this process, or with its steps on <paramref name="replicas"/> (workers that
    /// joined it), from <paramref name="resumeCheckpoint"/> when given.</summary>
    public static StageResult Run(PreparedStage stage, RunDirectory run, ITrainingObserver observer, IReadOnlyList<IReplicaEndpoint>? replicas = null,
        string? resumeCheckpoint = null, long? stopAfterStep = null, CancellationToken cancel = default)
    {
        var config = stage.Config;
        string? pretrained = config.Pretrained == RunConfig.RandomBackbone ? null : config.Pretrained; // null: a random backbone
        if (config.Stage == Stage.LinearEval)
        {
            if (replicas is not null) throw new ConfigException("linear-eval runs in one process (a linear layer on frozen features needs no workers)");
            return LinearEvaluation.Run(config, stage.Train, stage.Test, run, observer, pretrained);
        }
        if (config.Stage == Stage.KnnEval)
        {
            if (replicas is not null) throw new ConfigException("knn-eval runs in one process (it trains nothing)");
            return KnnEvaluation.Run(config, stage.Train, stage.Test, run, observer, pretrained);
        }
        using Trainer trainer = config.Stage == Stage.Pretrain
            ? new Pretrainer(config, stage.Train, stage.Test, run, observer, replicas, stage.Bank)
            : new ClassifierTrainer(config, stage.Train, stage.Test, run, observer, replicas);
        using var checkpoint = resumeCheckpoint is null ? null : Checkpoint.Load(resumeCheckpoint);
        return trainer.Execute(checkpoint, stopAfterStep, cancel);
    }

    /// <summary>Prepare, join (<paramref name="join"/>, given the training images, returns the workers; none: this
    /// process), run.</summary>
    public static async Task<StageResult> RunAsync(RunConfig config, RunDirectory run, ITrainingObserver observer, string? resumeCheckpoint = null,
        long? stopAfterStep = null, CancellationToken cancel = default, Func<ImageDataSet, IReadOnlyList<IReplicaEndpoint>>? join = null)
    {
        using var stage = await PrepareAsync(config, run, observer, cancel, withWorkers: join is not null);
        return Run(stage, run, observer, join?.Invoke(stage.Train), resumeCheckpoint, stopAfterStep, cancel);
    }
}

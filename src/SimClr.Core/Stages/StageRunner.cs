using SimClr.Core.Checkpoints;
using SimClr.Core.Config;
using SimClr.Core.Data;
using SimClr.Core.Step;
using static TorchSharp.torch;

namespace SimClr.Core.Stages;

/// <summary>Runs one stage from a validated config: loads the data, sets threads, dispatches, resumes.</summary>
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

    public static async Task<StageResult> RunAsync(RunConfig config, RunDirectory run, ITrainingObserver observer, string? resumeCheckpoint = null,
        long? stopAfterStep = null, CancellationToken cancel = default, Func<ImageDataSet, IReadOnlyList<IReplicaEndpoint>>? replicas = null)
    {
        CheckDevice(config.Device);
        if (config.Threads > 0) set_num_threads(config.Threads);
        using var data = await config.Data.LoadAsync(cancel: cancel);
        observer.Message($"{config.Stage}: {data.Train.Name} ({data.Train.Count} train, {data.Test.Count} test, {data.Train.Channels}x{data.Train.Height}x{data.Train.Width}), run directory {run.Path}");
        ImageDataSet train = data.Train;
        ImageDataSet? subset = null;
        if (config.Stage != Stage.Pretrain && config.LabelFraction < 1)
        {
            subset = train.Subset(LabelFraction.ClassBalanced(train.Labels, config.LabelFraction, config.Seed), $"{train.Name}-{config.LabelFraction:P0}-labels");
            train = subset;
            observer.Message($"using {train.Count} labelled images ({config.LabelFraction:P0}, class-balanced)");
        }
        try
        {
            if (config.Stage != Stage.LinearEval && config.BatchSize > train.Count)
                throw new ConfigException($"batchSize {config.BatchSize} is larger than the {train.Count} training images this run has"
                    + (subset is null ? "" : $" at labelFraction {config.LabelFraction}") + "; lower batchSize");
            if (config.Stage == Stage.LinearEval)
            {
                if (replicas is not null) throw new ConfigException("linear-eval runs in one process (a linear layer on frozen features needs no workers)");
                return LinearEvaluation.Run(config, train, data.Test, run, observer, config.Pretrained == RunConfig.RandomBackbone ? null : config.Pretrained);
            }
            var endpoints = replicas?.Invoke(train);
            using Trainer trainer = config.Stage == Stage.Pretrain
                ? new Pretrainer(config, train, data.Test, run, observer, endpoints)
                : new ClassifierTrainer(config, train, data.Test, run, observer, endpoints);
            using var checkpoint = resumeCheckpoint is null ? null : Checkpoint.Load(resumeCheckpoint);
            return trainer.Execute(checkpoint, stopAfterStep, cancel);
        }
        finally
        {
            subset?.Dispose();
        }
    }
}

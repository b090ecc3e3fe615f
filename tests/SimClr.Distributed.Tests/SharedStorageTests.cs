using Grpc.Core;
using SimClr.Coordinator;
using SimClr.Core.Checkpoints;
using SimClr.Core.Config;
using SimClr.Core.Data;
using SimClr.Core.Optim;
using SimClr.Core.Stages;
using SimClr.Core.Step;
using SimClr.Protocol;
using SimClr.Worker;
using SkiaSharp;
using TorchSharp;

namespace SimClr.Distributed.Tests;

/// <summary>data.sharedStorage: two workers open the same image folder (the same cache file) themselves, only indices
/// travel, and the run is the one the coordinator's shipped pixels give; a worker whose copy differs, or that cannot
/// read it, is refused at Join with what to do.</summary>
public sealed class SharedStorageTests : IAsyncLifetime
{
    private readonly string _folder = Directory.CreateTempSubdirectory("simclr-shared-storage-").FullName;
    private readonly List<WorkerHost> _hosts = [];
    private readonly List<IReplicaEndpoint> _endpoints = [];

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync()
    {
        foreach (var e in _endpoints) e.Dispose();
        foreach (var h in _hosts) await h.DisposeAsync();
        Directory.Delete(_folder, recursive: true);
    }

    /// <summary>Two classes of 24 generated images (PNG and JPEG); <paramref name="shift"/> changes one of them.</summary>
    private string Folder(string name, int shift = 0)
    {
        string root = Path.Combine(_folder, name);
        for (int i = 0; i < 24; i++)
        {
            ImageFolderCommandTests.Draw(Path.Combine(root, "red", $"{i}.png"), 20, 20, SKColors.Red, i + (i == 5 ? shift : 0));
            ImageFolderCommandTests.Draw(Path.Combine(root, "blue", $"{i}.jpg"), 20, 20, SKColors.Blue, 100 + i);
        }
        return root;
    }

    private RunConfig Config(Stage stage, string root, bool shared, string name) => new()
    {
        Stage = stage,
        Seed = 4,
        Threads = 1,
        RunsFolder = Path.Combine(_folder, "runs"),
        RunName = name,
        LabelFraction = stage == Stage.Pretrain ? 1 : 0.5,
        Data = new DataOptions(DataOptions.ImageFolder, Root: root, ImageSize: 16, SharedStorage: shared),
        Model = new ModelOptions { Width = 0.125, ProjectionHidden = 16, ProjectionDim = 8 },
        Optimizer = new OptimizerOptions { Kind = OptimizerKind.Lars, BaseLearningRate = 0.5, Scaling = LearningRateScaling.None, TrustCoefficient = 0.02 },
        Epochs = 1,
        BatchSize = 8,
        WarmupEpochs = 0,
        KnnEveryEpochs = 0,
        CheckpointEverySteps = 0,
    };

    private async Task<List<Uri>> StartWorkers(int count, string? dataRoot = null)
    {
        var addresses = new List<Uri>();
        for (int w = 0; w < count; w++)
        {
            var host = await WorkerHost.StartAsync(new WorkerOptions { WorkerId = $"w{w}", DataRoot = dataRoot });
            _hosts.Add(host);
            addresses.Add(host.Address);
        }
        return addresses;
    }

    /// <summary>Joins two fresh workers, each wrapped to record whether its shards carried pixels.</summary>
    private Func<ImageDataSet, IReadOnlyList<IReplicaEndpoint>> Workers(RunConfig config, List<bool> carriedPixels) => train =>
    {
        var addresses = StartWorkers(2).GetAwaiter().GetResult();
        var joined = WorkerPool.JoinAsync(addresses, config, train, TimeSpan.FromSeconds(60), TimeSpan.FromSeconds(30)).GetAwaiter().GetResult();
        _endpoints.AddRange(joined);
        return joined.Select(e => (IReplicaEndpoint)new Recording(e, carriedPixels)).ToList();
    };

    private sealed class Recording(IReplicaEndpoint inner, List<bool> carriedPixels) : DelegatingEndpoint(inner)
    {
        public override Task<Timed<FloatBlock>> ForwardAsync(ShardWork work, CancellationToken cancel)
        {
            lock (carriedPixels) carriedPixels.Add(work.Images is not null);
            return Inner.ForwardAsync(work, cancel);
        }

        public override void Dispose()
        {
        }
    }

    [Theory]
    [InlineData(Stage.Pretrain)]
    [InlineData(Stage.Supervised)] // a class-balanced half of the labels: the workers take the same subset
    public async Task Workers_reading_the_data_themselves_train_exactly_as_workers_sent_the_pixels(Stage stage)
    {
        string root = Folder("images");
        var shipped = Config(stage, root, shared: false, $"{stage}-shipped");
        var withPixels = new List<bool>();
        var a = await StageRunner.RunAsync(shipped, RunDirectory.Create(shipped), SilentObserver.Instance, join: Workers(shipped, withPixels));

        var shared = Config(stage, root, shared: true, $"{stage}-shared");
        var withoutPixels = new List<bool>();
        var b = await StageRunner.RunAsync(shared, RunDirectory.Create(shared), SilentObserver.Instance, join: Workers(shared, withoutPixels));

        Assert.True(a.Completed && b.Completed);
        Assert.NotEmpty(withPixels);
        Assert.All(withPixels, Assert.True);
        Assert.Equal(withPixels.Count, withoutPixels.Count);
        Assert.All(withoutPixels, Assert.False); // only indices travelled
        Assert.Single(Directory.GetFiles(root, ".simclr-imagefolder-*")); // one cache file, read by the coordinator and both workers

        using var x = Checkpoint.Load(a.CheckpointPath!);
        using var y = Checkpoint.Load(b.CheckpointPath!);
        Assert.Equal(x.Model.Keys.Order(), y.Model.Keys.Order());
        Assert.Equal(x.Optimizer.Keys.Order(), y.Optimizer.Keys.Order());
        foreach (var (name, tensor) in x.Model.Concat(x.Optimizer.Select(kv => KeyValuePair.Create("momentum " + kv.Key, kv.Value))))
        {
            var other = name.StartsWith("momentum ", StringComparison.Ordinal) ? y.Optimizer[name["momentum ".Length..]] : y.Model[name];
            Assert.Equal(tensor.shape, other.shape);
            Assert.True(tensor.eq(other).all().item<bool>(), $"{name} differs between the shipped and the shared-storage run"); // bit-identical
        }
    }

    [Fact]
    public async Task A_worker_whose_copy_of_the_data_differs_is_refused_at_join_with_what_to_do()
    {
        string root = Folder("images");
        string other = Folder("other", shift: 7); // one image drawn differently
        var config = Config(Stage.Pretrain, root, shared: true, "refused");
        var data = await config.Data.LoadAsync();
        using var _ = data;

        var differs = await Assert.ThrowsAsync<WorkerUnavailableException>(async () =>
            await WorkerPool.JoinAsync(await StartWorkers(1, dataRoot: other), config, data.Pretrain, TimeSpan.FromSeconds(60), TimeSpan.FromSeconds(30)));
        Assert.Contains("is not the coordinator's", differs.Message);
        Assert.Contains("--data-root", differs.Message);

        var missing = await Assert.ThrowsAsync<WorkerUnavailableException>(async () =>
            await WorkerPool.JoinAsync(await StartWorkers(1, dataRoot: Path.Combine(_folder, "nowhere")), config, data.Pretrain, TimeSpan.FromSeconds(60), TimeSpan.FromSeconds(30)));
        Assert.Contains("cannot open data set imagefolder", missing.Message);

        // the same images at another path (a copy, as another machine's mount would be) are the coordinator's
        string copy = Path.Combine(_folder, "mounted");
        foreach (string file in Directory.GetFiles(root, "*", SearchOption.AllDirectories).Where(f => !Path.GetFileName(f).StartsWith('.')))
        {
            string target = Path.Combine(copy, Path.GetRelativePath(root, file));
            Directory.CreateDirectory(Path.GetDirectoryName(target)!);
            File.Copy(file, target);
        }
        var joined = await WorkerPool.JoinAsync(await StartWorkers(1, dataRoot: copy), config, data.Pretrain, TimeSpan.FromSeconds(60), TimeSpan.FromSeconds(30));
        _endpoints.AddRange(joined);
        Assert.Single(joined);
    }

    [Fact]
    public async Task A_shard_without_pixels_is_refused_by_a_worker_that_joined_without_shared_storage()
    {
        string root = Folder("images");
        var config = Config(Stage.Pretrain, root, shared: false, "no-data");
        var data = await config.Data.LoadAsync();
        using var _ = data;
        var joined = await WorkerPool.JoinAsync(await StartWorkers(1), config, data.Pretrain, TimeSpan.FromSeconds(60), TimeSpan.FromSeconds(30));
        _endpoints.AddRange(joined);
        var client = ((GrpcReplicaEndpoint)joined[0]).Client;
        var shard = new ShardHeader { Step = 0, Epoch = 0, SharedStorage = true };
        shard.Indices.AddRange([0, 0]);
        shard.Views.AddRange([0, 1]);
        var refused = await Assert.ThrowsAsync<RpcException>(() => client.ForwardAsync(shard, [], null));
        Assert.Equal(StatusCode.FailedPrecondition, refused.StatusCode);
        Assert.Contains("joined without data.sharedStorage", refused.Status.Detail);
    }
}

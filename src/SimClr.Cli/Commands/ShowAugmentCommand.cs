using System.CommandLine;
using SimClr.Cli.Imaging;
using SimClr.Core.Augmentation;
using SimClr.Core.Data;
using static TorchSharp.torch;

namespace SimClr.Cli.Commands;

/// <summary>The seed's figure: a row of originals of one class and, under them, their two views t and t'.</summary>
internal static class ShowAugmentCommand
{
    public static Command Create()
    {
        var data = new Option<string>("--data") { Description = $"data set: {string.Join(", ", DataOptions.Names)}", DefaultValueFactory = _ => DataOptions.SyntheticShapes };
        var root = new Option<string?>("--data-root") { Description = "folder of the data set's files (default: the data set's own)" };
        var label = new Option<int>("--class") { Description = "class index to show", DefaultValueFactory = _ => 0 };
        var count = new Option<int>("--images") { Description = "how many images", DefaultValueFactory = _ => 8 };
        var seed = new Option<ulong>("--seed") { Description = "augmentation seed", DefaultValueFactory = _ => 0 };
        var epoch = new Option<long>("--epoch") { Description = "epoch whose views to draw", DefaultValueFactory = _ => 0 };
        var output = CommonOptions.Out("PNG file to write", "augment.png");
        var command = new Command("show-augment", "Write a PNG of original images of one class and their two augmented views (what the network is trained on).")
        {
            data, root, label, count, seed, epoch, output,
        };
        command.SetAction((r, cancel) => ExitCodes.RunAsync("simclr show-augment", () => Run(new DataOptions(r.GetValue(data)!, r.GetValue(root), SyntheticTrain: 2000, SyntheticTest: 10),
            r.GetValue(label), r.GetValue(count), r.GetValue(seed), r.GetValue(epoch), r.GetValue(output)!, cancel)));
        return command;
    }

    private static async Task<int> Run(DataOptions dataOptions, int label, int count, ulong seed, long epoch, string output, CancellationToken cancel)
    {
        using (var split = await dataOptions.LoadAsync(cancel: cancel))
        {
            var train = split.Train;
            if (label < 0 || label >= train.ClassNames.Count)
                throw new SimClr.Core.Config.ConfigException($"--class must be in 0..{train.ClassNames.Count - 1} for {train.Name}");
            long[] indices = Enumerable.Range(0, train.Count).Where(i => train.Labels[i] == label).Take(Math.Max(1, count)).Select(i => (long)i).ToArray();
            using var scope = NewDisposeScope();
            var images = train.Batch(indices);
            // views before normalisation, so they look like images
            var zero = Enumerable.Repeat(0.0, train.Channels).ToArray();
            var one = Enumerable.Repeat(1.0, train.Channels).ToArray();
            var augmenter = new ViewAugmenter(new AugmentationOptions { OutputSize = train.Height }, seed, zero, one);
            var views = augmenter.TwoViews(images, indices, epoch);
            var originals = images.to_type(ScalarType.Float32).div(255);
            var rows = new List<IReadOnlyList<Tensor>>
            {
                Enumerable.Range(0, indices.Length).Select(i => originals[i]).ToList(),
                Enumerable.Range(0, indices.Length).Select(i => views[2 * i]).ToList(),
                Enumerable.Range(0, indices.Length).Select(i => views[2 * i + 1]).ToList(),
            };
            PngGrid.Write(output, rows);
            Console.WriteLine($"wrote {output}: {indices.Length} '{train.ClassNames[label]}' images of {train.Name}; rows: originals, view t, view t' (seed {seed}, epoch {epoch})");
        }
        return ExitCodes.Success;
    }
}

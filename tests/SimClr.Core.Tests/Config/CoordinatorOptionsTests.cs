using SimClr.Core.Config;
using SimClr.Core.Stages;
using static TorchSharp.torch;

namespace SimClr.Core.Tests.Config;

public sealed class CoordinatorOptionsTests
{
    [Theory]
    [InlineData("auto", "cuda:1", false, false, "cuda:1")] // one process: the loss where the projections are
    [InlineData("auto", "cuda:0", true, false, "cpu")] // with workers, a coordinator without a GPU computes on its CPU
    [InlineData("auto", "cpu", true, true, "cuda:0")] // ... and with one, on its first GPU
    [InlineData("cpu", "cuda:0", false, true, "cpu")] // set: as set
    public void Auto_puts_the_loss_where_this_process_can_compute_it(string setting, string device, bool withWorkers, bool hasCuda, string expected) =>
        Assert.Equal(expected, new CoordinatorOptions { Device = setting }.Resolve(device, withWorkers, hasCuda));

    [Fact]
    public void A_coordinator_drives_workers_of_a_device_it_does_not_have_without_an_override()
    {
        var config = new RunConfig { Device = "cuda:99" }; // the workers' device: no machine here has it
        StageRunner.CheckDevices(config, withWorkers: true); // the workers' devices are theirs to check: nothing refused here
        Assert.Equal(cuda.is_available() ? "cuda:0" : "cpu", StageRunner.LocalDevice(config, withWorkers: true));
        Assert.Throws<ConfigException>(() => StageRunner.CheckDevices(config, withWorkers: false)); // one process must have it
        Assert.Contains(new RunConfig { Coordinator = new CoordinatorOptions { Device = " " } }.Problems(), p => p.StartsWith("coordinator.device", StringComparison.Ordinal));
    }
}

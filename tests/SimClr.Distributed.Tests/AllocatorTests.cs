using SimClr.Cli.Processes;

namespace SimClr.Distributed.Tests;

/// <summary>When simclr tunes glibc's malloc, and when `simclr launch` preloads tcmalloc into its processes.</summary>
public sealed class AllocatorTests
{
    private const string Tcmalloc = "/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4";

    private static Dictionary<string, string> Env(params (string Key, string Value)[] pairs) =>
        pairs.ToDictionary(p => p.Key, p => p.Value, StringComparer.Ordinal);

    private static string? Preload(Dictionary<string, string> environment, params string[] installed) =>
        Allocator.PreloadForChildren(environment, ["/nowhere/libtcmalloc_minimal.so.4", Tcmalloc, "/usr/lib64/libtcmalloc_minimal.so.4"], installed.Contains);

    [Fact]
    public void LaunchPreloadsTcmallocOnlyWhenInstalledAndLdPreloadUnset()
    {
        Assert.Equal(Tcmalloc, Preload(Env(), Tcmalloc));
        Assert.Equal(Tcmalloc, Preload(Env(("SIMCLR_MALLOC", "auto"), ("LD_PRELOAD", " ")), Tcmalloc, "/usr/lib64/libtcmalloc_minimal.so.4")); // the first that exists
        Assert.Null(Preload(Env())); // not installed
        Assert.Null(Preload(Env(("LD_PRELOAD", "/opt/libjemalloc.so.2")), Tcmalloc)); // the user's preload is kept
        Assert.Null(Preload(Env(("LD_PRELOAD", "/opt/libtrace.so")), Tcmalloc));
        Assert.Null(Preload(Env(("SIMCLR_MALLOC", "system")), Tcmalloc)); // opted out
        Assert.Null(Preload(Env(("SIMCLR_MALLOC", "glibc")), Tcmalloc));
        Assert.Null(Preload(Env(("SIMCLR_MALLOC", "bogus")), Tcmalloc));
        Assert.Null(Preload(Env(("MALLOC_MMAP_THRESHOLD_", "131072")), Tcmalloc)); // the user tunes glibc's malloc
        Assert.Null(Preload(Env(("GLIBC_TUNABLES", "glibc.malloc.arena_max=2")), Tcmalloc));
    }

    [Fact]
    public void MalloptTuningStepsAsideForTheUsersChoice()
    {
        Assert.Null(Allocator.ReasonToLeaveAlone(Env()));
        Assert.Null(Allocator.ReasonToLeaveAlone(Env(("SIMCLR_MALLOC", "glibc"))));
        Assert.Null(Allocator.ReasonToLeaveAlone(Env(("LD_PRELOAD", "/opt/libtrace.so")))); // not an allocator
        Assert.Null(Allocator.ReasonToLeaveAlone(Env(("GLIBC_TUNABLES", "glibc.cpu.hwcaps=-AVX2"))));
        Assert.NotNull(Allocator.ReasonToLeaveAlone(Env(("SIMCLR_MALLOC", "system"))));
        Assert.NotNull(Allocator.ReasonToLeaveAlone(Env(("SIMCLR_MALLOC", "bogus"))));
        Assert.NotNull(Allocator.ReasonToLeaveAlone(Env(("MALLOC_ARENA_MAX", "2"))));
        Assert.NotNull(Allocator.ReasonToLeaveAlone(Env(("GLIBC_TUNABLES", "glibc.malloc.trim_threshold=0"))));
        Assert.NotNull(Allocator.ReasonToLeaveAlone(Env(("LD_PRELOAD", Tcmalloc)))); // e.g. a process `simclr launch` started
        Assert.NotNull(Allocator.ReasonToLeaveAlone(Env(("LD_PRELOAD", "/a/libfoo.so:/usr/lib/libjemalloc.so.2"))));
    }

    [Fact]
    public void OnlyTrainingCommandsReexecuteThemselvesAndOnlyOnce()
    {
        string? Reexec(string[] args, params (string Key, string Value)[] pairs) =>
            Allocator.PreloadForReexec(args, Env(pairs), [Tcmalloc], p => p == Tcmalloc);
        Assert.Equal(Tcmalloc, Reexec(["pretrain", "--config", "c.json"]));
        Assert.Equal(Tcmalloc, Reexec(["quickstart"]));
        Assert.Null(Reexec(["pretrain", "--config", "c.json"], (Allocator.ReexecMarker, "1"))); // already did: no loop
        Assert.Null(Reexec(["pretrain", "--help"]));
        Assert.Null(Reexec(["launch", "--config", "c.json"])); // preloads into its children instead
        Assert.Null(Reexec(["worker"]));
        Assert.Null(Reexec(["bench", "step"])); // measures the allocator it is given
        Assert.Null(Reexec([]));
        Assert.Null(Reexec(["finetune"], ("SIMCLR_MALLOC", "system")));
        Assert.Null(Reexec(["finetune"], ("SIMCLR_MALLOC", "glibc")));
        Assert.Null(Reexec(["finetune"], ("LD_PRELOAD", "/opt/libjemalloc.so.2")));
        Assert.Null(Allocator.PreloadForReexec(["pretrain"], Env(), [Tcmalloc], _ => false)); // not installed
    }

    [Fact]
    public void LaunchedProcessesCompileEverythingOptimisedUnlessTheUserChoseTheirJit()
    {
        Assert.Equal(new KeyValuePair<string, string>("DOTNET_TieredCompilation", "0"), Jit.ForLaunchedProcesses(Env()));
        Assert.Equal(new KeyValuePair<string, string>("DOTNET_TieredCompilation", "0"), Jit.ForLaunchedProcesses(Env(("DOTNET_gcServer", "1"))));
        Assert.Null(Jit.ForLaunchedProcesses(Env(("DOTNET_TieredCompilation", "1"))));
        Assert.Null(Jit.ForLaunchedProcesses(Env(("DOTNET_TieredPGO", "0"))));
        Assert.Null(Jit.ForLaunchedProcesses(Env(("COMPlus_TieredCompilation", "0"))));
    }

    [Fact]
    public void TcmallocCandidatesAreAbsoluteSharedObjects() =>
        Assert.All(Allocator.TcmallocCandidates(), p => Assert.True(Path.IsPathRooted(p) && p.EndsWith("libtcmalloc_minimal.so.4", StringComparison.Ordinal), p));
}

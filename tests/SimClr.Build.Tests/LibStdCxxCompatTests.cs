using System.Diagnostics;
using System.Reflection;
using System.Text;
using System.Text.RegularExpressions;
using SimClr.Build;

namespace SimClr.Build.Tests;

/// <summary>The build step that lets TorchSharp 0.107's shim load on Debian 12 (build/NativeCompat).</summary>
public sealed class LibStdCxxCompatTests : IDisposable
{
    private readonly string _work = Directory.CreateTempSubdirectory("simclr-compat-").FullName;

    public void Dispose() => Directory.Delete(_work, recursive: true);

    private static string OriginalShimPath
    {
        get
        {
            string root = typeof(LibStdCxxCompatTests).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>()
                .Single(a => a.Key == "TorchSharpPackageRoot").Value!;
            return Path.Combine(root, "runtimes", "linux-x64", "native", "libLibTorchSharp.so");
        }
    }

    private static byte[] OriginalShim => File.ReadAllBytes(OriginalShimPath);

    /// <summary>Stands in for a system libstdc++ that defines exactly these version tags.</summary>
    private static byte[] FakeLibStdCxx(IEnumerable<string> versions) =>
        Encoding.ASCII.GetBytes("\0" + string.Join("\0", versions) + "\0");

    private static string Run(string file, string arguments)
    {
        var psi = new ProcessStartInfo(file, arguments) { RedirectStandardOutput = true, RedirectStandardError = true };
        using var process = Process.Start(psi)!;
        string output = process.StandardOutput.ReadToEnd() + process.StandardError.ReadToEnd();
        process.WaitForExit();
        return output;
    }

    [Fact]
    public void The_shipped_shim_needs_glibcxx_3_4_32_for_ios_base_library_init_only()
    {
        Assert.Contains(LibStdCxxCompat.MissingVersion, LibStdCxxCompat.RequiredVersions(OriginalShim, "libstdc++.so.6"));
        Assert.Equal([LibStdCxxCompat.Symbol], LibStdCxxCompat.SymbolsUsingVersion(OriginalShim, LibStdCxxCompat.MissingVersion));
        Assert.False(LibStdCxxCompat.IsPatched(OriginalShim));
    }

    [Fact]
    public void Patched_shim_requires_only_versions_debian_12_has_and_loads_the_compat_library()
    {
        byte[] original = OriginalShim;
        byte[] copy = (byte[])original.Clone();
        byte[] patched = LibStdCxxCompat.Patch(copy);

        Assert.Equal(original, copy); // the input is never modified
        Assert.Equal(original.Length, patched.Length); // no section moved
        var before = LibStdCxxCompat.RequiredVersions(original, "libstdc++.so.6");
        var after = LibStdCxxCompat.RequiredVersions(patched, "libstdc++.so.6");
        Assert.DoesNotContain(LibStdCxxCompat.MissingVersion, after);
        Assert.Equal(before.Where(v => v != LibStdCxxCompat.MissingVersion).Order(), after.Distinct().Order());
        Assert.DoesNotContain(LibStdCxxCompat.Symbol, LibStdCxxCompat.SymbolsUsingVersion(patched, LibStdCxxCompat.FallbackVersion));
        Assert.True(LibStdCxxCompat.IsPatched(patched));
        Assert.Equal(CompatAction.AlreadyPatched, LibStdCxxCompat.Decide(patched, FakeLibStdCxx([])));
        Assert.Contains("already patched", Assert.Throws<NativeCompatException>(() => LibStdCxxCompat.Patch(patched)).Message);
    }

    [Fact]
    public void Readelf_sees_the_patch_as_the_loader_will()
    {
        string shim = Path.Combine(_work, "libLibTorchSharp.so");
        File.WriteAllBytes(shim, LibStdCxxCompat.Patch(OriginalShim));
        string versions = Run("readelf", $"-V --wide \"{shim}\"");
        Assert.DoesNotContain(LibStdCxxCompat.MissingVersion, versions);
        Assert.Matches(@"Name: GLIBCXX_3\.4\.30\s+Flags: none\s+Version: 18", versions); // the retargeted entry
        string dynamic = Run("readelf", $"-d --wide \"{shim}\"");
        foreach (string needed in new[] { "libtorch.so", "libc10.so", "libstdc++.so.6", "libc.so.6", LibStdCxxCompat.CompatLibraryName })
            Assert.Contains($"Shared library: [{needed}]", dynamic);
    }

    [Fact]
    public void Patched_shim_resolves_against_this_systems_libstdcxx_with_the_compat_library_beside_it()
    {
        string shim = Path.Combine(_work, "libLibTorchSharp.so");
        File.WriteAllBytes(shim, LibStdCxxCompat.Patch(OriginalShim));
        LibStdCxxCompat.CompileCompatLibrary(Path.Combine(AppContext.BaseDirectory, "NativeCompat", "ios_base_library_init.cpp"),
            Path.Combine(_work, LibStdCxxCompat.CompatLibraryName));
        string ldd = Run("ldd", $"\"{shim}\"");
        Assert.DoesNotContain("version `", ldd); // what ldd prints for a missing version tag
        Assert.Matches($@"{LibStdCxxCompat.CompatLibraryName} => {Regex.Escape(_work)}/\./{LibStdCxxCompat.CompatLibraryName}|{LibStdCxxCompat.CompatLibraryName} => {Regex.Escape(_work)}/{LibStdCxxCompat.CompatLibraryName}", ldd);
        string symbols = Run("readelf", $"--dyn-syms --wide \"{Path.Combine(_work, LibStdCxxCompat.CompatLibraryName)}\"");
        Assert.Matches($@"FUNC\s+GLOBAL\s+DEFAULT\s+\d+\s+{LibStdCxxCompat.Symbol}", symbols);
    }

    [Fact]
    public void Nothing_is_done_where_the_system_libstdcxx_has_every_version()
    {
        var all = LibStdCxxCompat.RequiredVersions(OriginalShim, "libstdc++.so.6");
        Assert.Equal(CompatAction.NotNeeded, LibStdCxxCompat.Decide(OriginalShim, FakeLibStdCxx(all)));
    }

    [Fact]
    public void The_patch_is_chosen_where_only_glibcxx_3_4_32_is_missing()
    {
        var allBut32 = LibStdCxxCompat.RequiredVersions(OriginalShim, "libstdc++.so.6").Where(v => v != LibStdCxxCompat.MissingVersion);
        Assert.Equal(CompatAction.Patch, LibStdCxxCompat.Decide(OriginalShim, FakeLibStdCxx(allBut32)));
    }

    [Fact]
    public void A_system_missing_more_than_glibcxx_3_4_32_gets_a_clear_error_naming_what_is_missing()
    {
        var older = LibStdCxxCompat.RequiredVersions(OriginalShim, "libstdc++.so.6").Where(v => v is not ("GLIBCXX_3.4.32" or "GLIBCXX_3.4.30"));
        var e = Assert.Throws<NativeCompatException>(() => LibStdCxxCompat.Decide(OriginalShim, FakeLibStdCxx(older)));
        Assert.Contains("GLIBCXX_3.4.30", e.Message);
        Assert.Contains("newer distribution", e.Message);
    }

    [Fact]
    public void The_real_system_library_is_found_and_judged()
    {
        string? system = LibStdCxxCompat.FindSystemLibStdCxx();
        Assert.NotNull(system);
        byte[] bytes = File.ReadAllBytes(system);
        var expected = LibStdCxxCompat.ProvidesVersion(bytes, LibStdCxxCompat.MissingVersion) ? CompatAction.NotNeeded : CompatAction.Patch;
        Assert.Equal(expected, LibStdCxxCompat.Decide(OriginalShim, bytes));
        Assert.True(LibStdCxxCompat.ProvidesVersion(bytes, "GLIBCXX_3.4.9"));
    }

    [Theory]
    [InlineData("GLIBC_2.2.5", 0x09691a75u)]
    [InlineData("GLIBCXX_3.4.30", 0x0297f840u)]
    [InlineData("GLIBCXX_3.4.32", 0x0297f842u)]
    public void Elf_hash_matches_the_system_v_definition(string name, uint expected) =>
        Assert.Equal(expected, LibStdCxxCompat.ElfHash(name));

    [Fact]
    public void Files_that_are_not_elf_are_refused_with_a_message()
    {
        Assert.Equal("not an ELF file", Assert.Throws<NativeCompatException>(() => LibStdCxxCompat.Patch(new byte[100])).Message);
        byte[] elf32 = new byte[100];
        elf32[0] = 0x7f; elf32[1] = (byte)'E'; elf32[2] = (byte)'L'; elf32[3] = (byte)'F'; elf32[4] = 1; elf32[5] = 1;
        Assert.Contains("64-bit", Assert.Throws<NativeCompatException>(() => LibStdCxxCompat.Patch(elf32)).Message);
    }

    [Fact]
    public void Replacing_a_hard_linked_file_leaves_the_other_link_untouched()
    {
        string original = Path.Combine(_work, "cache.so");
        string output = Path.Combine(_work, "output.so");
        File.WriteAllBytes(original, [1, 2, 3]);
        Run("ln", $"\"{original}\" \"{output}\""); // build outputs are hard links into the NuGet cache
        Assert.Equal(new byte[] { 1, 2, 3 }, File.ReadAllBytes(output));
        LibStdCxxCompat.ReplaceFile(output, [9, 9]);
        Assert.Equal(new byte[] { 1, 2, 3 }, File.ReadAllBytes(original));
        Assert.Equal(new byte[] { 9, 9 }, File.ReadAllBytes(output));
    }
}

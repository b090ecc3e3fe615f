// Makes TorchSharp's native shim (libLibTorchSharp.so) load on systems whose libstdc++ predates GCC 13
// (Debian 12, Ubuntu 22.04). The shim needs exactly one symbol from GLIBCXX_3.4.32,
// std::ios_base_library_init(), which GCC 13 emits a call to from every object that includes <iostream>.
// The fix, on a copy of the shim:
//   1. clear that symbol's version (its .gnu.version entry becomes 1, "global"),
//   2. point the GLIBCXX_3.4.32 requirement in .gnu.version_r at the GLIBCXX_3.4.30 string (and its hash),
//      because the loader checks every listed requirement even if no symbol uses it,
//   3. add a DT_NEEDED on a tiny library that defines the symbol as a no-op (libtorch's own objects
//      initialise the iostreams), using a spare DT_NULL slot of .dynamic and the now unused
//      "GLIBCXX_3.4.32" bytes of .dynstr for its name, so no section moves.
// Compiled twice: into an MSBuild inline task (build/TorchSharpNative.targets) and into the tests, which
// define SIMCLR_NATIVE_COMPAT_TESTS to leave the MSBuild task out. MSBuild compiles inline tasks against
// netstandard2.0, hence the plain classes, loops and hand-written little-endian writes.
#nullable enable
using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.IO;
using System.Linq;
using System.Text;

namespace SimClr.Build
{
    public sealed class NativeCompatException : Exception
    {
        public NativeCompatException(string message) : base(message) { }
    }

    public enum CompatAction { NotNeeded, Patch, AlreadyPatched }

    public static class LibStdCxxCompat
    {
        public const string MissingVersion = "GLIBCXX_3.4.32";
        public const string FallbackVersion = "GLIBCXX_3.4.30";
        public const string Symbol = "_ZSt21ios_base_library_initv";
        public const string LibStdCxx = "libstdc++.so.6";

        /// <summary>File name of the no-op library; it must fit in the bytes of "GLIBCXX_3.4.32".</summary>
        public const string CompatLibraryName = "libiosinit.so";

        private const uint ShtDynamic = 6, ShtDynsym = 11, ShtVersym = 0x6fffffff, ShtVerneed = 0x6ffffffe;
        private const long DtNull = 0, DtNeeded = 1;

        /// <summary>Where a Debian/Ubuntu/Fedora system keeps the libstdc++ the dynamic loader will use.</summary>
        public static readonly string[] SystemLibStdCxxCandidates =
        {
            "/lib/x86_64-linux-gnu/libstdc++.so.6", "/usr/lib/x86_64-linux-gnu/libstdc++.so.6",
            "/lib/aarch64-linux-gnu/libstdc++.so.6", "/usr/lib/aarch64-linux-gnu/libstdc++.so.6",
            "/usr/lib64/libstdc++.so.6", "/lib64/libstdc++.so.6", "/usr/lib/libstdc++.so.6",
        };

        public static string? FindSystemLibStdCxx() => SystemLibStdCxxCandidates.FirstOrDefault(File.Exists);

        /// <summary>True when the library's bytes name the version tag (as a NUL-terminated string).</summary>
        public static bool ProvidesVersion(byte[] library, string version)
        {
            return IndexOf(library, Encoding.ASCII.GetBytes("\0" + version + "\0"), 0, library.Length) >= 0;
        }

        /// <summary>Version tags the ELF file requires from the named library (.gnu.version_r).</summary>
        public static IReadOnlyList<string> RequiredVersions(byte[] elf, string fromLibrary)
        {
            var image = new ElfImage(elf);
            return image.Verneeds().Where(n => n.File == fromLibrary).SelectMany(n => n.Aux).Select(a => a.Name).ToList();
        }

        /// <summary>What a shim needs on a system with the given libstdc++.so.6.</summary>
        public static CompatAction Decide(byte[] shim, byte[] systemLibStdCxx)
        {
            if (IsPatched(shim)) return CompatAction.AlreadyPatched;
            var missing = RequiredVersions(shim, LibStdCxx).Where(v => !ProvidesVersion(systemLibStdCxx, v)).ToList();
            if (missing.Count == 0) return CompatAction.NotNeeded;
            if (missing.Count == 1 && missing[0] == MissingVersion) return CompatAction.Patch;
            throw new NativeCompatException(
                $"it needs {string.Join(", ", missing)} from {LibStdCxx}, which this system lacks; only the {MissingVersion} gap "
                + "can be bridged. Use a newer distribution (Debian 13, Ubuntu 24.04) or a newer libstdc++.");
        }

        public static bool IsPatched(byte[] elf) => new ElfImage(elf).Needed().Contains(CompatLibraryName);

        /// <summary>Names of the dynamic symbols whose version index is that of the given requirement.</summary>
        public static IReadOnlyList<string> SymbolsUsingVersion(byte[] elf, string version)
        {
            var image = new ElfImage(elf);
            var indices = image.Verneeds().SelectMany(n => n.Aux).Where(a => a.Name == version).Select(a => a.Other);
            var set = new HashSet<ushort>(indices);
            var result = new List<string>();
            for (int i = 0; i < image.SymbolCount; i++)
            {
                if (set.Contains((ushort)(image.VersionIndex(i) & 0x7fff))) result.Add(image.SymbolName(i));
            }
            return result;
        }

        /// <summary>Returns a patched copy of the shim; the input array is not modified.</summary>
        public static byte[] Patch(byte[] original)
        {
            byte[] elf = (byte[])original.Clone();
            var image = new ElfImage(elf);
            if (image.Needed().Contains(CompatLibraryName))
                throw new NativeCompatException("the library is already patched");

            var users = SymbolsUsingVersion(elf, MissingVersion);
            if (users.Count != 1 || users[0] != Symbol)
                throw new NativeCompatException(
                    $"{MissingVersion} is used by [{string.Join(", ", users)}], not only by {Symbol}; this fix does not apply");

            // 1. clear the symbol's version
            int symbol = Enumerable.Range(0, image.SymbolCount).Single(i => image.SymbolName(i) == Symbol);
            image.SetVersionIndex(symbol, 1);

            // 2. retarget the GLIBCXX_3.4.32 requirement to GLIBCXX_3.4.30
            var stdcxx = image.Verneeds().SingleOrDefault(n => n.File == LibStdCxx)
                ?? throw new NativeCompatException($"no version requirements on {LibStdCxx}");
            var missing = stdcxx.Aux.Single(a => a.Name == MissingVersion);
            uint fallbackName = stdcxx.Aux.FirstOrDefault(a => a.Name == FallbackVersion)?.NameOffset
                ?? image.FindString(FallbackVersion)
                ?? throw new NativeCompatException($"{FallbackVersion} is not in .dynstr");
            image.SetVernaux(missing.Offset, ElfHash(FallbackVersion), fallbackName);

            // 3. reuse the freed string for the compat library's name, and a spare DT_NULL for DT_NEEDED
            uint freed = missing.NameOffset;
            if (image.IsReferencedElsewhere(freed, MissingVersion.Length + 1, missing.Offset))
                throw new NativeCompatException($"the {MissingVersion} string is shared with another entry; this fix does not apply");
            image.OverwriteString(freed, CompatLibraryName, MissingVersion.Length);
            image.AddNeeded(freed);
            return elf;
        }

        /// <summary>The System V ELF hash used for vna_hash.</summary>
        public static uint ElfHash(string name)
        {
            uint h = 0;
            foreach (byte c in Encoding.ASCII.GetBytes(name))
            {
                h = (h << 4) + c;
                uint g = h & 0xf0000000;
                if (g != 0) h ^= g >> 24;
                h &= ~g;
            }
            return h;
        }

        /// <summary>Writes via a temporary file and a rename, so a hard-linked original (the NuGet cache) is never edited.</summary>
        public static void ReplaceFile(string path, byte[] contents)
        {
            string temp = path + ".patching";
            File.WriteAllBytes(temp, contents);
            File.Delete(path);
            File.Move(temp, path);
        }

        /// <summary>Compiles the no-op std::ios_base_library_init() with the system's g++.</summary>
        public static void CompileCompatLibrary(string source, string output)
        {
            Directory.CreateDirectory(Path.GetDirectoryName(output)!);
            var psi = new ProcessStartInfo("g++", $"-shared -fPIC -O2 -o \"{output}\" \"{source}\"")
            {
                RedirectStandardError = true,
                RedirectStandardOutput = true,
                UseShellExecute = false,
            };
            Process process;
            try
            {
                process = Process.Start(psi) ?? throw new NativeCompatException("g++ did not start");
            }
            catch (System.ComponentModel.Win32Exception)
            {
                throw new NativeCompatException("g++ is not installed; install it (Debian/Ubuntu: apt-get install g++) and build again");
            }
            string errors = process.StandardError.ReadToEnd();
            process.WaitForExit();
            if (process.ExitCode != 0)
                throw new NativeCompatException($"g++ failed to build {CompatLibraryName}: {errors.Trim()}");
        }

        private static int IndexOf(byte[] haystack, byte[] needle, int start, int length)
        {
            for (int i = start; i <= start + length - needle.Length; i++)
            {
                int k = 0;
                while (k < needle.Length && haystack[i + k] == needle[k]) k++;
                if (k == needle.Length) return i;
            }
            return -1;
        }

        private sealed class Vernaux
        {
            public Vernaux(int offset, string name, uint nameOffset, ushort other) { Offset = offset; Name = name; NameOffset = nameOffset; Other = other; }
            public int Offset { get; }
            public string Name { get; }
            public uint NameOffset { get; }
            public ushort Other { get; }
        }

        private sealed class Verneed
        {
            public Verneed(string file, uint fileOffset, IReadOnlyList<Vernaux> aux) { File = file; FileOffset = fileOffset; Aux = aux; }
            public string File { get; }
            public uint FileOffset { get; }
            public IReadOnlyList<Vernaux> Aux { get; }
        }

        /// <summary>Just enough ELF64 little-endian to read and edit the dynamic-linking sections.</summary>
        private sealed class ElfImage
        {
            private readonly byte[] _b;
            private readonly (long Offset, long Size, uint Link) _dynsym, _dynstr, _versym, _verneed, _dynamic;

            public ElfImage(byte[] bytes)
            {
                _b = bytes;
                if (bytes.Length < 64 || bytes[0] != 0x7f || bytes[1] != (byte)'E' || bytes[2] != (byte)'L' || bytes[3] != (byte)'F')
                    throw new NativeCompatException("not an ELF file");
                if (bytes[4] != 2 || bytes[5] != 1)
                    throw new NativeCompatException("not a 64-bit little-endian ELF file");
                long shoff = I64(0x28);
                int shentsize = U16(0x3A), shnum = U16(0x3C);
                var sections = new Dictionary<uint, (long, long, uint)>();
                for (int i = 0; i < shnum; i++)
                {
                    long h = shoff + (long)i * shentsize;
                    uint type = U32(h + 4);
                    if (type is ShtDynamic or ShtDynsym or ShtVersym or ShtVerneed && !sections.ContainsKey(type))
                        sections[type] = (I64(h + 0x18), I64(h + 0x20), U32(h + 0x28));
                }
                foreach (uint t in new[] { ShtDynamic, ShtDynsym, ShtVersym, ShtVerneed })
                {
                    if (!sections.ContainsKey(t)) throw new NativeCompatException($"ELF section of type 0x{t:x} is missing");
                }
                _dynamic = sections[ShtDynamic];
                _dynsym = sections[ShtDynsym];
                _versym = sections[ShtVersym];
                _verneed = sections[ShtVerneed];
                long strHeader = shoff + (long)_dynsym.Link * shentsize;
                _dynstr = (I64(strHeader + 0x18), I64(strHeader + 0x20), 0);
            }

            public int SymbolCount => (int)(_dynsym.Size / 24);

            public string SymbolName(int i) => Str(U32(_dynsym.Offset + i * 24L));

            public ushort VersionIndex(int i) => U16(_versym.Offset + i * 2L);

            public void SetVersionIndex(int i, ushort value) => Write(_versym.Offset + i * 2L, value, 2);

            public IEnumerable<Verneed> Verneeds()
            {
                long at = _verneed.Offset;
                while (true)
                {
                    int count = U16(at + 2);
                    uint fileOffset = U32(at + 4);
                    var aux = new List<Vernaux>();
                    long a = at + U32(at + 8);
                    for (int k = 0; k < count; k++)
                    {
                        uint name = U32(a + 8);
                        aux.Add(new Vernaux((int)a, Str(name), name, U16(a + 6)));
                        uint nextAux = U32(a + 12);
                        if (nextAux == 0) break;
                        a += nextAux;
                    }
                    yield return new Verneed(Str(fileOffset), fileOffset, aux);
                    uint next = U32(at + 12);
                    if (next == 0) yield break;
                    at += next;
                }
            }

            public void SetVernaux(int offset, uint hash, uint nameOffset)
            {
                Write(offset, hash, 4);
                Write(offset + 8, nameOffset, 4);
            }

            public IEnumerable<(long Tag, ulong Value, long Offset)> DynamicEntries()
            {
                for (long at = _dynamic.Offset; at < _dynamic.Offset + _dynamic.Size; at += 16)
                    yield return (I64(at), (ulong)I64(at + 8), at);
            }

            public IReadOnlyList<string> Needed() =>
                DynamicEntries().Where(e => e.Tag == DtNeeded).Select(e => Str((uint)e.Value)).ToList();

            public void AddNeeded(uint nameOffset)
            {
                var entries = DynamicEntries().ToList();
                int firstNull = entries.FindIndex(e => e.Tag == DtNull);
                if (firstNull < 0 || firstNull + 1 >= entries.Count)
                    throw new NativeCompatException(".dynamic has no spare slot for another DT_NEEDED");
                long at = entries[firstNull].Offset;
                Write(at, DtNeeded, 8);
                Write(at + 8, nameOffset, 8);
            }

            public uint? FindString(string s)
            {
                int i = IndexOf(_b, Encoding.ASCII.GetBytes(s + "\0"), (int)_dynstr.Offset, (int)_dynstr.Size);
                return i < 0 ? null : (uint)(i - _dynstr.Offset);
            }

            /// <summary>Whether any string reference other than the given vernaux points into [start, start+length).</summary>
            public bool IsReferencedElsewhere(uint start, int length, int exceptVernaux)
            {
                bool Inside(ulong o) => o >= start && o < start + (ulong)length;
                for (int i = 0; i < SymbolCount; i++)
                {
                    if (Inside(U32(_dynsym.Offset + i * 24L))) return true;
                }
                foreach (var need in Verneeds())
                {
                    if (Inside(need.FileOffset)) return true;
                    if (need.Aux.Any(a => a.Offset != exceptVernaux && Inside(a.NameOffset))) return true;
                }
                long[] stringTags = { 1, 14, 15, 29 }; // DT_NEEDED, DT_SONAME, DT_RPATH, DT_RUNPATH
                return DynamicEntries().Any(e => stringTags.Contains(e.Tag) && Inside(e.Value));
            }

            public void OverwriteString(uint offset, string value, int capacity)
            {
                if (value.Length > capacity) throw new NativeCompatException($"'{value}' does not fit in {capacity} bytes");
                int at = (int)(_dynstr.Offset + offset);
                Array.Clear(_b, at, capacity + 1);
                byte[] bytes = Encoding.ASCII.GetBytes(value);
                Buffer.BlockCopy(bytes, 0, _b, at, bytes.Length);
            }

            private string Str(uint offset)
            {
                int start = (int)(_dynstr.Offset + offset);
                int end = Array.IndexOf(_b, (byte)0, start);
                return Encoding.ASCII.GetString(_b, start, end - start);
            }

            private void Write(long at, long value, int size)
            {
                for (int k = 0; k < size; k++) _b[at + k] = (byte)(value >> (8 * k));
            }

            private ushort U16(long at) => BitConverter.ToUInt16(_b, (int)at);

            private uint U32(long at) => BitConverter.ToUInt32(_b, (int)at);

            private long I64(long at) => BitConverter.ToInt64(_b, (int)at);
        }
    }

#if !SIMCLR_NATIVE_COMPAT_TESTS
    /// <summary>MSBuild task: applies the fix to each given libLibTorchSharp.so when the system needs it.</summary>
    public sealed class ApplyLibStdCxxCompat : Microsoft.Build.Utilities.Task
    {
        [Microsoft.Build.Framework.Required]
        public Microsoft.Build.Framework.ITaskItem[] Shims { get; set; } = Array.Empty<Microsoft.Build.Framework.ITaskItem>();

        [Microsoft.Build.Framework.Required]
        public string CompatSource { get; set; } = "";

        [Microsoft.Build.Framework.Required]
        public string IntermediateDirectory { get; set; } = "";

        public override bool Execute()
        {
            string? system = LibStdCxxCompat.FindSystemLibStdCxx();
            if (system == null)
            {
                Log.LogMessage(Microsoft.Build.Framework.MessageImportance.Low, "No system libstdc++.so.6 found; TorchSharp shim left as it is.");
                return true;
            }
            byte[] systemBytes = File.ReadAllBytes(system);
            string compiled = Path.Combine(IntermediateDirectory, LibStdCxxCompat.CompatLibraryName);
            foreach (var item in Shims)
            {
                string shim = item.GetMetadata("FullPath");
                try
                {
                    byte[] bytes = File.ReadAllBytes(shim);
                    var action = LibStdCxxCompat.Decide(bytes, systemBytes);
                    if (action == CompatAction.NotNeeded) continue;
                    if (action == CompatAction.Patch)
                    {
                        LibStdCxxCompat.ReplaceFile(shim, LibStdCxxCompat.Patch(bytes));
                        Log.LogMessage(Microsoft.Build.Framework.MessageImportance.High,
                            $"TorchSharp native compat: {system} lacks {LibStdCxxCompat.MissingVersion}; patched {shim} (see build/NativeCompat).");
                    }
                    if (!File.Exists(compiled) || File.GetLastWriteTimeUtc(compiled) < File.GetLastWriteTimeUtc(CompatSource))
                        LibStdCxxCompat.CompileCompatLibrary(CompatSource, compiled);
                    string beside = Path.Combine(Path.GetDirectoryName(shim)!, LibStdCxxCompat.CompatLibraryName);
                    if (!File.Exists(beside) || File.GetLastWriteTimeUtc(beside) < File.GetLastWriteTimeUtc(compiled))
                        File.Copy(compiled, beside, overwrite: true);
                }
                catch (NativeCompatException e)
                {
                    Log.LogError($"TorchSharp native compat for {shim}: {e.Message}");
                }
            }
            return !Log.HasLoggedErrors;
        }
    }
#endif
}

using System.Runtime.InteropServices;

namespace SimClr.Cli.Commands;

/// <summary>Ctrl-C and SIGTERM (kill, a scheduler, the launcher) both call one action instead of ending the process,
/// so that a command can stop cleanly (a checkpoint, then exit); until the registration is disposed.</summary>
internal static class Interrupts
{
    public static IDisposable Handle(Action onInterrupt)
    {
        ConsoleCancelEventHandler onCancel = (_, e) =>
        {
            e.Cancel = true;
            onInterrupt();
        };
        Console.CancelKeyPress += onCancel;
        var onTerminate = PosixSignalRegistration.Create(PosixSignal.SIGTERM, context =>
        {
            context.Cancel = true;
            onInterrupt();
        });
        return new Registration(onCancel, onTerminate);
    }

    private sealed class Registration(ConsoleCancelEventHandler onCancel, PosixSignalRegistration onTerminate) : IDisposable
    {
        public void Dispose()
        {
            Console.CancelKeyPress -= onCancel;
            onTerminate.Dispose();
        }
    }
}

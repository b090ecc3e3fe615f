using Grpc.Core;
using SimClr.Protocol;

namespace SimClr.Worker;

/// <summary>
/// Reading a Worker call's request stream: a header message then one tensor, or one tensor alone. Every defect of the
/// stream (a <see cref="ProtocolViolation"/> of the chunks, a message out of place, a part missing) is InvalidArgument
/// with a message that says what was wrong.
/// </summary>
internal static class RequestStreams
{
    /// <summary>Reads a call's header message, then the chunks of one tensor; anything else, or either missing (the tensor
    /// unless <paramref name="tensorOptional"/>), is InvalidArgument. <paramref name="expect"/> checks the tensor's header
    /// against the call's before any of its bytes are allocated (it throws to refuse), so a call holds no more than it should.</summary>
    public static async Task<(THeader Header, TensorChunks.Received Tensor)> ReadHeaderThenTensor<TMessage, THeader>(IAsyncStreamReader<TMessage> stream,
        Func<TMessage, THeader?> header, Func<TMessage, TensorChunk?> chunk, Func<TMessage, object> part, string call, string expected, ServerCallContext context,
        Action<THeader, TensorHeader> expect, bool tensorOptional = false)
        where THeader : class
    {
        THeader? first = null;
        TensorChunks.Received? tensor = null;
        var assembler = new TensorChunks.Assembler(check: (tensorHeader, _) => expect(first!, tensorHeader)); // a chunk is taken only after the header
        await foreach (var message in stream.ReadAllAsync(context.CancellationToken))
        {
            if (header(message) is { } h && first is null) first = h;
            else if (chunk(message) is { } c && first is not null && tensor is null) tensor = Guard(() => assembler.Add(c));
            else throw Invalid($"unexpected {part(message)} in {call} (expected {expected})");
        }
        Guard(assembler.Complete);
        if (first is not null && tensor is null && tensorOptional) return (first, null!);
        if (first is null || tensor is null) throw Invalid($"{call} needs {expected}");
        return (first, tensor);
    }

    public static async Task<TensorChunks.Received> ReceiveOne(IAsyncStreamReader<TensorChunk> stream, ServerCallContext context, Action<TensorHeader, long> expect)
    {
        try
        {
            return await TensorChunks.ReadOneAsync(stream, context.CancellationToken, expect);
        }
        catch (ProtocolViolation e)
        {
            throw Invalid(e.Message);
        }
    }

    public static T Guard<T>(Func<T> read)
    {
        try
        {
            return read();
        }
        catch (ProtocolViolation e)
        {
            throw Invalid(e.Message);
        }
    }

    public static void Guard(Action read) => Guard(() =>
    {
        read();
        return true;
    });

    public static RpcException Invalid(string message) => new(new Status(StatusCode.InvalidArgument, message));
}

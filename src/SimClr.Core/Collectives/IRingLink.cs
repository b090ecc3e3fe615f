namespace SimClr.Core.Collectives;

/// <summary>A worker's two ring connections: to the next worker (sending) and from the previous one (receiving).</summary>
public interface IRingLink
{
    /// <summary>Queues a piece for the next worker; never waits for the next worker to take it.</summary>
    void Send(RingPiece piece);

    /// <summary>The previous worker's next piece, in the order it sent them. Throws <see cref="RingBrokenException"/>
    /// when that worker's stream broke or ended.</summary>
    ValueTask<RingPiece> ReceiveAsync(CancellationToken cancel);
}

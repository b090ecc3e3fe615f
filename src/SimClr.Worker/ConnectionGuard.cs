using Microsoft.AspNetCore.Connections;
using SimClr.Protocol;

namespace SimClr.Worker;

/// <summary>
/// Counts a worker's connections in two kinds: those that have made a Worker or Peer call that passed the token check
/// (<see cref="TokenInterceptor"/>: the coordinator's, the ring's), and the rest (health probes, strangers, and every
/// connection before its first call). At most <see cref="WireLimits.MaxConnections"/> of the rest are kept: a new
/// connection beyond that closes the oldest of them. So connections without the token, idle or not, cannot lock out
/// the coordinator (a cap on all connections, before any token was seen, did), and the memory they can pin stays
/// bounded (connections x HTTP/2 window).
/// </summary>
public sealed class ConnectionGuard
{
    private readonly Lock _gate = new();
    private readonly LinkedList<ConnectionContext> _strangers = new(); // oldest first
    private readonly Dictionary<string, LinkedListNode<ConnectionContext>> _byId = [];

    /// <summary>Kestrel connection middleware: tracks each connection from its start to its end.</summary>
    public ConnectionDelegate Middleware(ConnectionDelegate next) => async connection =>
    {
        ConnectionContext? evicted = null;
        lock (_gate)
        {
            if (_strangers.Count >= WireLimits.MaxConnections)
            {
                evicted = _strangers.First!.Value;
                Forget(evicted.ConnectionId);
            }
            _byId[connection.ConnectionId] = _strangers.AddLast(connection);
        }
        evicted?.Abort(new ConnectionAbortedException($"over {WireLimits.MaxConnections} connections without an authorised call: the oldest is closed"));
        try
        {
            await next(connection);
        }
        finally
        {
            lock (_gate) Forget(connection.ConnectionId);
        }
    };

    /// <summary>The connection <paramref name="connectionId"/> made a call that passed the token check: it is no longer closed to make room.</summary>
    public void Authorised(string connectionId)
    {
        lock (_gate) Forget(connectionId);
    }

    private void Forget(string connectionId)
    {
        if (_byId.Remove(connectionId, out var node)) _strangers.Remove(node);
    }
}

using Google.Protobuf;
using Grpc.AspNetCore.Server.Model;
using Grpc.Core;
using Microsoft.Extensions.Logging;

namespace SimClr.Worker;

/// <summary>
/// Binds <typeparamref name="TService"/>'s methods (in place of gRPC's own binding, which the service turns off with an
/// empty <c>[BindServiceMethod]</c>) with request marshallers that answer a message protobuf cannot decode with
/// InvalidArgument, logged in one line, not the Unknown (unary calls: decoded before any interceptor runs) or the
/// Internal with a stack trace (streams: decoded inside the handler) that gRPC gives any other exception.
/// </summary>
internal sealed class UndecodableIsInvalid<TService>(TService service, Action<ServiceBinderBase, TService> bind, ILogger log) : IServiceMethodProvider<TService>
    where TService : class
{
    public void OnServiceMethodDiscovery(ServiceMethodProviderContext<TService> context) => bind(new Binder(context, log), service);

    private sealed class Binder(ServiceMethodProviderContext<TService> context, ILogger log) : ServiceBinderBase
    {
        public override void AddMethod<TRequest, TResponse>(Method<TRequest, TResponse> method, UnaryServerMethod<TRequest, TResponse>? handler) =>
            context.AddUnaryMethod(Checked(method, log), [], (_, request, call) => handler!(request, call));

        public override void AddMethod<TRequest, TResponse>(Method<TRequest, TResponse> method, ClientStreamingServerMethod<TRequest, TResponse>? handler) =>
            context.AddClientStreamingMethod(Checked(method, log), [], (_, requests, call) => handler!(requests, call));

        public override void AddMethod<TRequest, TResponse>(Method<TRequest, TResponse> method, ServerStreamingServerMethod<TRequest, TResponse>? handler) =>
            context.AddServerStreamingMethod(Checked(method, log), [], (_, request, responses, call) => handler!(request, responses, call));

        public override void AddMethod<TRequest, TResponse>(Method<TRequest, TResponse> method, DuplexStreamingServerMethod<TRequest, TResponse>? handler) =>
            context.AddDuplexStreamingMethod(Checked(method, log), [], (_, requests, responses, call) => handler!(requests, responses, call));
    }

    private static Method<TRequest, TResponse> Checked<TRequest, TResponse>(Method<TRequest, TResponse> method, ILogger log)
        where TRequest : class where TResponse : class
    {
        var decode = method.RequestMarshaller.ContextualDeserializer;
        var request = Marshallers.Create(method.RequestMarshaller.ContextualSerializer, context =>
        {
            try
            {
                return decode(context);
            }
            catch (InvalidProtocolBufferException e)
            {
                string why = $"{method.FullName}: a message that is not a {typeof(TRequest).Name}: {e.Message}";
                log.LogWarning("refused (InvalidArgument): {Reason}", why);
                throw new RpcException(new Status(StatusCode.InvalidArgument, why));
            }
        });
        return new Method<TRequest, TResponse>(method.Type, method.ServiceName, method.Name, request, method.ResponseMarshaller);
    }
}

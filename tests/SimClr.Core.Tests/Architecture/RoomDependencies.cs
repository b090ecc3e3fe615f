using Mono.Cecil;

namespace SimClr.Core.Tests.Architecture;

/// <summary>
/// Which namespaces of SimClr.Core reference which, read from the compiled assembly (signatures, base types, fields,
/// attributes and every method body's IL, lambdas and async state machines included): what the code really uses, not
/// what its using directives say.
/// </summary>
public static class RoomDependencies
{
    /// <summary>Every (from room, to namespace) edge with one example each: "Type.Member uses Other".</summary>
    public static Dictionary<(string From, string To), string> Of(string assemblyPath, string rootNamespace)
    {
        using var module = ModuleDefinition.ReadModule(assemblyPath);
        var edges = new Dictionary<(string, string), string>();
        foreach (var type in module.Types.SelectMany(Flatten))
        {
            string from = Room(TopLevel(type).Namespace, rootNamespace);
            if (from.Length == 0) continue;
            foreach (var (where, used) in References(type))
            {
                string to = used.Namespace.Length > 0 || !used.IsNested ? used.Namespace : TopLevel(used).Namespace;
                if (to.Length == 0) continue;
                string target = to.StartsWith(rootNamespace + ".", StringComparison.Ordinal) ? Room(to, rootNamespace) : to;
                if (target == from) continue;
                edges.TryAdd((from, target), $"{TopLevel(type).Name}{where} uses {used.FullName}");
            }
        }
        return edges;
    }

    /// <summary>"Step" for "SimClr.Core.Step" (and its sub-namespaces); "" outside the root.</summary>
    private static string Room(string ns, string root) =>
        ns.StartsWith(root + ".", StringComparison.Ordinal) ? ns[(root.Length + 1)..].Split('.')[0] : "";

    private static IEnumerable<TypeDefinition> Flatten(TypeDefinition type) => new[] { type }.Concat(type.NestedTypes.SelectMany(Flatten));

    private static TypeReference TopLevel(TypeReference type)
    {
        while (type.DeclaringType is not null) type = type.DeclaringType;
        return type;
    }

    private static IEnumerable<(string Where, TypeReference Used)> References(TypeDefinition type)
    {
        var found = new List<(string, TypeReference?)> { ("", type.BaseType) };
        found.AddRange(type.Interfaces.Select(i => ("", (TypeReference?)i.InterfaceType)));
        found.AddRange(type.CustomAttributes.Select(a => ("", (TypeReference?)a.AttributeType)));
        found.AddRange(type.Fields.Select(f => ($".{f.Name}", (TypeReference?)f.FieldType)));
        foreach (var p in type.Properties) found.Add(($".{p.Name}", p.PropertyType));
        foreach (var e in type.Events) found.Add(($".{e.Name}", e.EventType));
        foreach (var m in type.Methods)
        {
            string at = $".{m.Name}";
            found.Add((at, m.ReturnType));
            found.AddRange(m.Parameters.Select(p => (at, (TypeReference?)p.ParameterType)));
            found.AddRange(m.CustomAttributes.Select(a => (at, (TypeReference?)a.AttributeType)));
            if (!m.HasBody) continue;
            found.AddRange(m.Body.Variables.Select(v => (at, (TypeReference?)v.VariableType)));
            foreach (var instruction in m.Body.Instructions)
            {
                switch (instruction.Operand)
                {
                    case TypeReference t:
                        found.Add((at, t));
                        break;
                    case MethodReference called:
                        found.Add((at, called.DeclaringType));
                        found.Add((at, called.ReturnType));
                        found.AddRange(called.Parameters.Select(p => (at, (TypeReference?)p.ParameterType)));
                        if (called is GenericInstanceMethod generic) found.AddRange(generic.GenericArguments.Select(a => (at, (TypeReference?)a)));
                        break;
                    case FieldReference field:
                        found.Add((at, field.DeclaringType));
                        found.Add((at, field.FieldType));
                        break;
                }
            }
        }
        return found.Where(x => x.Item2 is not null).SelectMany(x => Expand(x.Item2!).Select(t => (x.Item1, t)));
    }

    /// <summary>A type and what it is made of: element types of arrays, pointers and by-refs, generic arguments, function pointers' signatures.</summary>
    private static IEnumerable<TypeReference> Expand(TypeReference type)
    {
        switch (type)
        {
            case GenericInstanceType generic:
                return Expand(generic.ElementType).Concat(generic.GenericArguments.SelectMany(Expand));
            case FunctionPointerType pointer: // delegate* unmanaged<...> (the NCCL binding): what it takes and returns
                return Expand(pointer.ReturnType).Concat(pointer.Parameters.SelectMany(p => Expand(p.ParameterType)));
            case TypeSpecification spec:
                return Expand(spec.ElementType);
            case GenericParameter:
                return [];
            default:
                return [type];
        }
    }
}

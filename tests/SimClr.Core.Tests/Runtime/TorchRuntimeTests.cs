using static TorchSharp.torch;

namespace SimClr.Core.Tests.Runtime;

public class TorchRuntimeTests
{
    [Fact]
    public void Torch_loads_its_native_libraries_and_computes()
    {
        using var a = tensor(new float[] { 1, 2, 3, 4 }).reshape(2, 2);
        using var b = tensor(new float[] { 5, 6, 7, 8 }).reshape(2, 2);
        using var product = a.matmul(b);
        Assert.Equal(new float[] { 19, 22, 43, 50 }, product.data<float>().ToArray());
    }

    [Fact]
    public void Autograd_computes_a_known_gradient()
    {
        using var x = tensor(new double[] { 1, -2, 3 }).requires_grad_(true);
        using var y = x.pow(3).sum();
        y.backward();
        Assert.Equal(new double[] { 3, 12, 27 }, x.grad!.data<double>().ToArray());
    }
}

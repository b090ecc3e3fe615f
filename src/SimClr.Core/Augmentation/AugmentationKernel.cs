namespace SimClr.Core.Augmentation;

/// <summary>How <see cref="ViewAugmenter"/> computes views; both give the same views to float tolerance.</summary>
public enum AugmentationKernel
{
    /// <summary>Fused CPU loops for images on the CPU, tensor operations elsewhere (GPU).</summary>
    Auto,

    /// <summary>Batched tensor operations on the images' device.</summary>
    Tensor,

    /// <summary>Fused per-view loops on the CPU.</summary>
    Cpu,
}

namespace SimClr.Core.Data;

/// <summary>A data set could not be read or fetched; the message names the file and what is wrong with it.</summary>
public sealed class DataSetException : Exception
{
    public DataSetException(string message) : base(message) { }

    public DataSetException(string message, Exception inner) : base(message, inner) { }
}

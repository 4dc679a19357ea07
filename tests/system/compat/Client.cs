// Client.cs - the .NET documentation sample's named-pipe client ("How to:
// Use Named Pipes for Network Interprocess Communication"), as users write
// it: NamedPipeClientStream to pipe NAME on this machine, check the server's
// greeting, send a file name, print the text that comes back. Its framing is
// the sample's StreamString class, unchanged in substance. pipefiled's
// system tests compile it with mcs and run it with mono (tests/system/
// test_compat.py): a client whose transport no one here wrote.
//
// Usage: Client.exe PIPE_NAME FILE_NAME
// Prints the file's text to stdout as UTF-8 and exits 0; exits 3 when the
// greeting is not the server's, 2 on usage errors.
using System;
using System.IO;
using System.IO.Pipes;
using System.Text;

public class PipeClient
{
    public static int Main(string[] args)
    {
        if (args.Length != 2)
        {
            Console.Error.WriteLine("usage: Client.exe PIPE_NAME FILE_NAME");
            return 2;
        }
        var pipeClient = new NamedPipeClientStream(".", args[0],
            PipeDirection.InOut, PipeOptions.None);
        pipeClient.Connect(10000);
        var ss = new StreamString(pipeClient);
        // Validate the server's signature string, as the sample does.
        string greeting = ss.ReadString();
        if (greeting != "I am the one true server!")
        {
            Console.Error.WriteLine("Server could not be verified: " + greeting);
            pipeClient.Close();
            return 3;
        }
        ss.WriteString(args[1]);
        string text = ss.ReadString();
        var stdout = new StreamWriter(Console.OpenStandardOutput(),
            new UTF8Encoding(false));
        stdout.Write(text);
        stdout.Flush();
        pipeClient.Close();
        return 0;
    }
}

// Defines the data protocol for reading and writing strings on our stream
// (the sample's class).
public class StreamString
{
    private Stream ioStream;
    private UnicodeEncoding streamEncoding;

    public StreamString(Stream ioStream)
    {
        this.ioStream = ioStream;
        streamEncoding = new UnicodeEncoding();
    }

    public string ReadString()
    {
        int len = 0;

        len = ioStream.ReadByte() * 256;
        len += ioStream.ReadByte();
        byte[] inBuffer = new byte[len];
        // The sample reads once; a stream may return fewer bytes than asked
        // (a socket does, for a large frame): read until the frame is whole.
        int got = 0;
        while (got < len)
        {
            int n = ioStream.Read(inBuffer, got, len - got);
            if (n <= 0)
                throw new EndOfStreamException("frame cut short");
            got += n;
        }

        return streamEncoding.GetString(inBuffer);
    }

    public int WriteString(string outString)
    {
        byte[] outBuffer = streamEncoding.GetBytes(outString);
        int len = outBuffer.Length;
        if (len > UInt16.MaxValue)
        {
            len = (int)UInt16.MaxValue;
        }
        ioStream.WriteByte((byte)(len / 256));
        ioStream.WriteByte((byte)(len & 255));
        ioStream.Write(outBuffer, 0, len);
        ioStream.Flush();

        return outBuffer.Length + 2;
    }
}

package io.lakestream.hadoop;

import java.io.IOException;
import java.net.URI;
import java.net.URISyntaxException;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.ChecksumFs;
import org.apache.hadoop.fs.DelegateToFileSystem;
import org.apache.hadoop.fs.FsConstants;

/** The FileContext side of {@link NioLocalFileSystem} (Spark's streaming checkpoints write through FileContext). */
public class NioLocalFs extends ChecksumFs {
  public NioLocalFs(URI uri, Configuration conf) throws IOException, URISyntaxException {
    super(new Raw(conf));
  }

  /** Delegates to {@link NioLocalFileSystem.Raw}, as Hadoop's RawLocalFs does to RawLocalFileSystem. */
  public static class Raw extends DelegateToFileSystem {
    public Raw(Configuration conf) throws IOException, URISyntaxException {
      super(FsConstants.LOCAL_FS_URI, new NioLocalFileSystem.Raw(), conf, FsConstants.LOCAL_FS_URI.getScheme(), false);
    }

    @Override
    public int getUriDefaultPort() {
      return -1;
    }

    @Override
    public boolean isValidName(String src) {
      return true; // local paths may hold any character Hadoop's URI rules reject, as in RawLocalFs
    }
  }
}

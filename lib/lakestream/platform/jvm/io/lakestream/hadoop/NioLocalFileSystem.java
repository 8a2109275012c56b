package io.lakestream.hadoop;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.attribute.PosixFilePermission;
import java.util.EnumSet;
import java.util.Set;
import org.apache.hadoop.fs.FileStatus;
import org.apache.hadoop.fs.LocalFileSystem;
import org.apache.hadoop.fs.Path;
import org.apache.hadoop.fs.RawLocalFileSystem;
import org.apache.hadoop.fs.permission.FsPermission;

/**
 * Hadoop's local file system (with its checksum files) that sets permissions and tells links through java.nio.
 *
 * <p>Without Hadoop's native library, RawLocalFileSystem runs a {@code chmod} child process for every file and
 * folder it creates: a partitioned Delta write of 183 days forks several hundred of them. It also runs a
 * {@code readlink} child process to ask whether a path is a symbolic link, before every rename through FileContext:
 * a streaming query's checkpoint (offsets, commits, each state store's changelog and their checksum files) forked
 * about 16 per micro-batch. This subclass changes only how a permission is applied and how a link is told apart;
 * what is written, renamed and checked stays Hadoop's.
 */
public class NioLocalFileSystem extends LocalFileSystem {
  public NioLocalFileSystem() {
    super(new Raw());
  }

  /** The raw local file system, setPermission through java.nio.file. */
  public static class Raw extends RawLocalFileSystem {
    private static final PosixFilePermission[] BITS = {
      PosixFilePermission.OTHERS_EXECUTE, PosixFilePermission.OTHERS_WRITE, PosixFilePermission.OTHERS_READ,
      PosixFilePermission.GROUP_EXECUTE, PosixFilePermission.GROUP_WRITE, PosixFilePermission.GROUP_READ,
      PosixFilePermission.OWNER_EXECUTE, PosixFilePermission.OWNER_WRITE, PosixFilePermission.OWNER_READ,
    };

    @Override
    public void setPermission(Path p, FsPermission permission) throws IOException {
      short mode = permission.toShort();
      Set<PosixFilePermission> wanted = EnumSet.noneOf(PosixFilePermission.class);
      for (int bit = 0; bit < BITS.length; bit++) {
        if ((mode & (1 << bit)) != 0) {
          wanted.add(BITS[bit]);
        }
      }
      Files.setPosixFilePermissions(pathToFile(p).toPath(), wanted);
    }

    /**
     * The status of p itself: Hadoop's answer for a symbolic link (rare here), {@link #getFileStatus} otherwise,
     * which is what Hadoop's answers for a path that is not a link.
     */
    @Override
    public FileStatus getFileLinkStatus(Path p) throws IOException {
      if (Files.isSymbolicLink(pathToFile(p).toPath())) {
        return super.getFileLinkStatus(p);
      }
      return getFileStatus(p);
    }
  }
}

# Spack recipe for pbackup. NOT TESTED: no Spack was available where pbackup is developed (the
# CMake options and dependencies below are those CMakeLists.txt uses; the versions are those of
# Debian 12, on which pbackup is built and tested). Copy into a Spack repository as
# packages/pbackup/package.py and adjust the url/git to where your site keeps the sources.
from spack.package import *


class Pbackup(CMakePackage):
    """Parallel backup and restore for HPC clusters into standard archives (tar.gz, tar.bz2,
    tar.zst, zip) that GNU tar and unzip read, compressed by every core of every MPI rank."""

    homepage = "https://example.org/pbackup"
    git = "https://example.org/pbackup.git"

    maintainers("pbackup")
    license("UNKNOWN")

    version("main", branch="main")

    variant("tests", default=False, description="Build the unit test binaries (needs doctest)")

    depends_on("cmake@3.20:", type="build")
    depends_on("pkgconfig", type="build")
    depends_on("mpi")
    depends_on("boost@1.74: +mpi+serialization")
    depends_on("libarchive")
    depends_on("zlib-api")
    depends_on("bzip2")
    depends_on("zstd")
    depends_on("libdeflate")
    depends_on("openssl")
    depends_on("curl")
    depends_on("cxxopts")
    depends_on("nlohmann-json@3.10:")
    depends_on("doctest", type="build", when="+tests")

    def cmake_args(self):
        return [self.define_from_variant("PBACKUP_BUILD_TESTS", "tests")]

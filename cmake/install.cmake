# `cmake --install build [--prefix P]` and `cpack -G DEB` (issue 18):
#   bin/pbackup, share/man/man1/pbackup.1, share/pbackup/slurm/ (the batch scripts and their
#   shared library), share/pbackup/modulefiles/pbackup/VERSION (a Tcl modulefile Lmod and
#   Environment Modules both read, its prefix filled in at install time), share/doc/pbackup/.
include(GNUInstallDirs)
# `cpack` and `make install` package what is built (pbackup) without building the tests first.
set(CMAKE_SKIP_INSTALL_ALL_DEPENDENCY ON)

install(TARGETS pbackup RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(FILES docs/pbackup.1 DESTINATION ${CMAKE_INSTALL_MANDIR}/man1)
install(PROGRAMS slurm/backup.sbatch slurm/restore.sbatch slurm/verify.sbatch slurm/backup-then-verify.sh
        DESTINATION ${CMAKE_INSTALL_DATADIR}/pbackup/slurm)
install(FILES slurm/common.sh slurm/README.md DESTINATION ${CMAKE_INSTALL_DATADIR}/pbackup/slurm)
install(FILES README.md docs/DESIGN.md docs/admin-guide.md docs/format.md docs/performance.md
        DESTINATION ${CMAKE_INSTALL_DOCDIR})
# The modulefile names the prefix it is installed under (DESTDIR and cpack's staging excluded).
install(CODE "
  set(PBACKUP_PREFIX \"\${CMAKE_INSTALL_PREFIX}\")
  set(PBACKUP_VERSION \"${PROJECT_VERSION}\")
  set(PBACKUP_MANDIR \"${CMAKE_INSTALL_MANDIR}\")
  set(PBACKUP_BINDIR \"${CMAKE_INSTALL_BINDIR}\")
  set(PBACKUP_DATADIR \"${CMAKE_INSTALL_DATADIR}\")
  configure_file(\"${CMAKE_SOURCE_DIR}/packaging/modulefile.in\"
                 \"${CMAKE_BINARY_DIR}/modulefile-install/${PROJECT_VERSION}\" @ONLY)
  file(INSTALL \"${CMAKE_BINARY_DIR}/modulefile-install/${PROJECT_VERSION}\"
       DESTINATION \"\${CMAKE_INSTALL_PREFIX}/${CMAKE_INSTALL_DATADIR}/pbackup/modulefiles/pbackup\")
")

# Debian package: `cpack --config build/CPackConfig.cmake -G DEB`. The shared libraries it links
# (libarchive, libzstd, Boost.MPI, Open MPI, ...) are found by dpkg-shlibdeps; the launcher
# mpirun is declared by hand (openmpi-bin).
set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME pbackup)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_CONTACT "pbackup maintainers <dev@pbackup>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "parallel backup and restore into standard tar and zip archives (MPI)")
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION admin)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_DEPENDS "openmpi-bin")
set(CPACK_DEBIAN_PACKAGE_SUGGESTS "slurm-client")
include(CPack)

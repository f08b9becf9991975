# What `cmake --install build [--prefix P]` puts in place besides the
# binary (plugin/), the libraries and the headers (lib/):
#   lib/pkgconfig/healthreg.pc, healthreg-static.pc
#   lib/cmake/healthreg/  healthregConfig.cmake, ...Version.cmake, targets
#   share/man/man1/healthreg.1, man5/healthreg.json.5
#   lib/systemd/system/healthreg.service (HR_SYSTEMD_UNITDIR)
#   share/bash-completion/completions/healthreg
#   share/doc/healthreg/  the docs and examples
include(CMakePackageConfigHelpers)

set(HR_CMAKEDIR ${CMAKE_INSTALL_LIBDIR}/cmake/healthreg)
set(HR_SYSTEMD_UNITDIR lib/systemd/system CACHE STRING
    "where the systemd unit is installed (relative to the prefix, or absolute)")

# pkg-config: prefix= is found from the .pc file's own place.
file(RELATIVE_PATH HR_PC_RELPREFIX
     /prefix/${CMAKE_INSTALL_LIBDIR}/pkgconfig /prefix)
foreach(pc healthreg healthreg-static)
  configure_file(${CMAKE_CURRENT_LIST_DIR}/${pc}.pc.in
                 ${PROJECT_BINARY_DIR}/${pc}.pc @ONLY)
  install(FILES ${PROJECT_BINARY_DIR}/${pc}.pc
          DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
endforeach()

# find_package(healthreg)
install(EXPORT healthregTargets NAMESPACE healthreg::
        DESTINATION ${HR_CMAKEDIR})
configure_package_config_file(${CMAKE_CURRENT_LIST_DIR}/healthregConfig.cmake.in
  ${PROJECT_BINARY_DIR}/healthregConfig.cmake INSTALL_DESTINATION ${HR_CMAKEDIR})
# 0.x: a minor release may change the API.
write_basic_package_version_file(${PROJECT_BINARY_DIR}/healthregConfigVersion.cmake
  COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/healthregConfig.cmake
              ${PROJECT_BINARY_DIR}/healthregConfigVersion.cmake
        DESTINATION ${HR_CMAKEDIR})

# Man pages: roff written in docs/man, with the version filled in.
foreach(page healthreg.1 healthreg.json.5)
  configure_file(${PROJECT_SOURCE_DIR}/docs/man/${page}.in
                 ${PROJECT_BINARY_DIR}/man/${page} @ONLY)
  string(REGEX REPLACE ".*\\." "" section ${page})
  install(FILES ${PROJECT_BINARY_DIR}/man/${page}
          DESTINATION ${CMAKE_INSTALL_MANDIR}/man${section})
endforeach()

# The systemd unit, with this installation's paths (known at install time).
install(CODE "
  set(HR_UNIT_SRC \"${PROJECT_SOURCE_DIR}/docs/examples/healthreg.service\")
  set(HR_UNIT_OUT \"${PROJECT_BINARY_DIR}/healthreg.service\")
  set(HR_BINDIR \"${CMAKE_INSTALL_BINDIR}\")
  set(HR_DOCDIR \"${CMAKE_INSTALL_DOCDIR}\")
  include(\"${CMAKE_CURRENT_LIST_DIR}/install-unit.cmake\")")
install(FILES ${PROJECT_BINARY_DIR}/healthreg.service
        DESTINATION ${HR_SYSTEMD_UNITDIR})

# Bash completion, where bash-completion looks it up by command name.
install(FILES ${PROJECT_SOURCE_DIR}/contrib/completion/healthreg.bash
        DESTINATION ${CMAKE_INSTALL_DATADIR}/bash-completion/completions
        RENAME healthreg)

install(FILES ${PROJECT_SOURCE_DIR}/README.md
        DESTINATION ${CMAKE_INSTALL_DOCDIR})
install(DIRECTORY ${PROJECT_SOURCE_DIR}/docs/
        DESTINATION ${CMAKE_INSTALL_DOCDIR}
        PATTERN man EXCLUDE)

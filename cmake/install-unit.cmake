# Run by `cmake --install`: the systemd unit of docs/examples with the
# paths of this installation (the prefix is known only now: --prefix).
# In: HR_UNIT_SRC, HR_UNIT_OUT, HR_BINDIR, HR_DOCDIR (relative to the
# prefix, or absolute).
foreach(v HR_BINDIR HR_DOCDIR)
  if(NOT IS_ABSOLUTE "${${v}}")
    set(${v} "${CMAKE_INSTALL_PREFIX}/${${v}}")
  endif()
endforeach()
file(READ "${HR_UNIT_SRC}" unit)
string(REPLACE "/usr/local/bin/healthreg" "${HR_BINDIR}/healthreg"
       unit "${unit}")
string(REPLACE "file:///usr/share/doc/healthreg/" "file://${HR_DOCDIR}/"
       unit "${unit}")
file(WRITE "${HR_UNIT_OUT}" "${unit}")

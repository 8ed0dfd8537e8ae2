# Installs one systemd unit and its settings file (install(SCRIPT), run by
# `cmake --install` and by cpack). The paths in the unit are only known at install
# time (a package installs to /usr whatever the build was configured with), so the
# unit is configured here. Input: RESWEEP_DEPLOY_DIR (deploy/ in the sources) and
# RESWEEP_SERVICE (resweep-coordinator or resweep-worker).
set(prefix "${CMAKE_INSTALL_PREFIX}")
# As GNUInstallDirs: the settings of a /usr install live in /etc.
if(prefix STREQUAL "/usr")
  set(sysconfdir "/etc")
else()
  set(sysconfdir "${prefix}/etc")
endif()
set(RESWEEP_BINDIR "${prefix}/bin")
set(RESWEEP_DEFAULTS_DIR "${sysconfdir}/default")

set(unit "$ENV{DESTDIR}${prefix}/lib/systemd/system/${RESWEEP_SERVICE}.service")
message(STATUS "Installing: ${unit}")
configure_file("${RESWEEP_DEPLOY_DIR}/${RESWEEP_SERVICE}.service.in" "${unit}" @ONLY)

# An existing settings file is the administrator's: never overwritten (the package
# marks it a conffile, which dpkg handles the same way).
set(settings "$ENV{DESTDIR}${RESWEEP_DEFAULTS_DIR}/${RESWEEP_SERVICE}")
if(EXISTS "${settings}")
  message(STATUS "Up-to-date (kept): ${settings}")
else()
  message(STATUS "Installing: ${settings}")
  file(MAKE_DIRECTORY "$ENV{DESTDIR}${RESWEEP_DEFAULTS_DIR}")
  configure_file("${RESWEEP_DEPLOY_DIR}/${RESWEEP_SERVICE}.default" "${settings}" COPYONLY)
endif()

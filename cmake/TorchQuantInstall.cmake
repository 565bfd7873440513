include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

set(TORCHQUANT_CMAKE_DIR "${CMAKE_INSTALL_LIBDIR}/cmake/TorchQuant")
install(TARGETS torchquant EXPORT TorchQuantTargets
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
  RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR}
  INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(DIRECTORY include/torchquant DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(EXPORT TorchQuantTargets NAMESPACE TorchQuant:: DESTINATION ${TORCHQUANT_CMAKE_DIR})

configure_package_config_file(cmake/TorchQuantConfig.cmake.in
  "${CMAKE_CURRENT_BINARY_DIR}/TorchQuantConfig.cmake"
  INSTALL_DESTINATION ${TORCHQUANT_CMAKE_DIR})
write_basic_package_version_file("${CMAKE_CURRENT_BINARY_DIR}/TorchQuantConfigVersion.cmake"
  COMPATIBILITY SameMinorVersion)
install(FILES "${CMAKE_CURRENT_BINARY_DIR}/TorchQuantConfig.cmake"
              "${CMAKE_CURRENT_BINARY_DIR}/TorchQuantConfigVersion.cmake"
        DESTINATION ${TORCHQUANT_CMAKE_DIR})

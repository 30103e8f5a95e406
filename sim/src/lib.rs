//! Simulators for testing qualys-connector without a real FMC or Qualys account.

"""The TensorFlow half of the engine: the losses written once, the GradientTape step, the Keras
feature extractor and the seed's ``NST`` class. Imported only when a setting needs TensorFlow."""

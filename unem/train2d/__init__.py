"""Train 2D CNNs on labelled slices and predict with them.

`options` declares the job options; `data` turns a dataset's image and label layers into
training slices, targets and patches; `augment` perturbs patches; `losses` holds the loss
functions (Keras is imported only inside them) and the numpy scores of validation.
"""

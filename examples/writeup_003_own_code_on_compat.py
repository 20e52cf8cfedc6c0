"""Write-up 003's own script, with its functions imported from
fastcnn.compat.writeup003: the same CNN object, the same variables and the same
full-batch training step, unchanged.

The write-up trains on 1,000 CIFAR-10 images loaded from a local module; CIFAR-10 does
not come with fastcnn, so this script feeds the same shapes from Fashion-MNIST: padded
to 32 x 32, repeated over 3 channels and scaled to [0, 1], with one-hot labels as the
loop expects (the write-up's data cell is the only one replaced, and N is set by the
data). As in the write-up, it runs one step (numsteps = 1); its first loss, 2.30 on
CIFAR-10, is 2.30 here too.

For the same network written with fastcnn's own API and trained for several epochs, see
writeup_003_cifar_style.py.

    python examples/writeup_003_own_code_on_compat.py [--fast]
"""

import time

import numpy as np

from fastcnn.compat.writeup003 import (
    ReLU,
    Softmax,
    conv_backward,
    convolve_forward,
    derivative_ReLU,
    derivative_Softmax,
    maxpool_backward,
    maxpool_forward,
)

from _data import load_images, parse_args

args = parse_args(__doc__)
np.random.seed(args.seed)
images_count = 100 if args.fast else 1000  # the write-up: N = 1000
(train_images, train_classes), _ = load_images(args.fast, images_count, 0, args.seed)


# -- from here on, the write-up's own code (its cells 1, 2 and 8) ----------------------
import numpy as np

class CNN:
    '''    
    Parameters applicable to convolutional layers 2 & 4:
       self.ksize         :  kernel size with respect to weight filters/receptive fields
       self.stride        :  number of pixels moved by filter at one time
       self.pad           :  amount of zero padding to surround border of input volume
    
    Weights filters (numbering based on whether L is a convolutional layer):
       self.W2            :  layer 2 weights (depth(L), depth(L-1), ksize, ksize)
       self.W4            :  layer 4 weights  "
       self.n_inpts       :  total input depth (images and neurons)
       self.calfactor     :  factor to help calibrate variances between network layers
    
    Other variables accessible inside convolution functions:
       self.Xcol2         :  'im2col' aligned data, associated with convolutional layer 2
       self.Xcol4         :  'im2col' aligned data, associated with convolutional layer 4
       self.images        :   cached input to convolutional layer 2
       self.Z3            :   cached input to convolutional layer 4
    '''   
    def __init__(self):
        self.ksize      = 5
        self.stride     = 1
        self.pad        = 2 
        self.n_inpts    = 3+10+20+1280+100
        self.calfactor  = np.sqrt(2.0/self.n_inpts) 
        self.W2         = np.random.randn(10, 3, self.ksize, self.ksize) * self.calfactor  
        self.W4         = np.random.randn(20, 10, self.ksize, self.ksize) * self.calfactor
        self.Xcol2      = []
        self.Xcol4      = []
        self.images     = []
        self.Z3         = []
        
# instantiate
m = CNN()

N = images_count                           # number of training examples in batch
imap = list( range(N) )             # index of training examples
imagesshape = (3,32,32)             # input shape (depth, height & width dims)
Z2shape = (10,32,32)                # layer 2 output shape (depth, height & width dims)
Z3shape = (10,16,16)                # layer 3 output shape "
Z4shape = (20,16,16)                # layer 4 output shape "
Z5shape = (20,8,8)                  # layer 5 output shape "
hiddenshape = (100)                 # layer 6 output shape (length of hidden layer)
outputshape = (10)                  # layer 7 output shape (number of output classes) 
W6 = np.random.randn(1280, 100) * m.calfactor # layer 6 weights (input size, hidden size)
W7 = np.random.randn(100, 10) * m.calfactor   # layer 7 weigths (hidden size, output size)
b2 = np.zeros( (Z2shape[0], 1) )              # layer 2 bias parameters
b4 = np.zeros( (Z4shape[0], 1) )              # layer 4 bias parameters
b6 = np.zeros( (1, hiddenshape) )             # layer 6 bias parameters
b7 = np.zeros( (1, outputshape) )             # layer 7 bias parameters 

# -- the write-up's cell 7 loads CIFAR-10; Fashion-MNIST as 3 x 32 x 32 instead --------
# pixels in [0, 1], as the write-up's CIFAR-10 loader gives them
imgs = np.repeat(np.pad(train_images, ((0, 0), (2, 2), (2, 2)))[:, None], 3, axis=1) / 255
labels = np.eye(10)[train_classes]  # binary vectors, as the write-up's loader gives
m.images = imgs - imgs.mean(axis=0)
Y = []
for i in range(N):
    Y.append( np.argmax(labels[i]) )

started = time.perf_counter()
# training parameters
numsteps = 1
learnrate = 1
penalty = 0.001  
p = 0.5  # keep_probability, with respect to dropout

# training loop
for iteration in range(numsteps):

    # forward pass layers 2 through 5
    Z2 = ReLU( convolve_forward(m, m.images, m.W2, b2, layer=2) )
    m.Z3, argmaxes3 = maxpool_forward(Z2)
    Z4 = ReLU( convolve_forward(m, m.Z3, m.W4, b4, layer=4) )
    Z5, argmaxes5 = maxpool_forward(Z4) 

    # forward pass fully-connected layer 6
    mask6 = (np.random.rand(*W6.shape) < p) / p
    Z5flat = np.zeros( (N, 20*8*8) )
    for i in range(N): 
        Z5flat[i] = np.ndarray.flatten(Z5[i]) #flatten pooling output
    Z6 = ReLU( np.dot( Z5flat, mask6*W6 ) + b6 )

    # forward pass output layer 7
    mask7 = (np.random.rand(*W7.shape) < p) / p   
    Z7 = np.dot(Z6, mask7*W7) + b7 
    Yhat = Softmax(Z7)
    
    # evaluate loss
    logloss = -np.log( Yhat[imap, Y] ) #wrt yhats, wrt correct classes
    loss = np.sum(logloss)/N
    print ('Iteration', iteration, 'loss', loss)

    # compute errors with respect to output probabilities
    outerr7 = - ( labels - Yhat ) 

    # backward pass output layer 7
    delta7 = np.zeros( (N, outputshape) )
    for i in range(N):
        delta7[i] = outerr7[i] * derivative_Softmax( Z7[i] ) 
    dW7 = np.dot( Z6.T, delta7 )
    db7 = np.sum( delta7, axis=0, keepdims=True )
    outerr6 = np.dot( delta7, (mask7*W7).T ) 

    # backward pass fully-connected layer 6
    delta6 = outerr6 * derivative_ReLU(Z6)  
    dW6 = np.dot( Z5flat.T, delta6 )
    db6 = np.sum( delta6, axis=0, keepdims=True )
    outerr5 = np.dot( delta6, (mask6*W6).T )
 
    # backward pass pooling layer 5
    outerr5 = outerr5.reshape( (N, *Z5shape) )  # unflatten
    outerr4 = maxpool_backward(argmaxes5, inpt=outerr5, outshape=((N, *Z4shape)))

    # backward pass convolutional layer 4
    delta4 = outerr4 * derivative_ReLU(Z4)  
    dW4, db4, outerr3 = conv_backward(m, inpt=delta4, layer=4)

    # backward pass pooling layer 3
    outerr2 = maxpool_backward(argmaxes3, inpt=outerr3, outshape=((N, *Z2shape)))

    # backward pass convolutional layer 2
    delta2 = outerr2 * derivative_ReLU(Z2)  
    dW2, db2, outerr1 = conv_backward(m, inpt=delta2, layer=2)
    
    # regularization penalty
    dW7 += penalty * W7
    dW6 += penalty * W6
    dW4 += penalty * m.W4
    dW2 += penalty * m.W2    
    
    # parameter update
    W7   += -learnrate * dW7
    W6   += -learnrate * dW6
    m.W4 += -learnrate * dW4
    m.W2 += -learnrate * dW2
    b7   += -learnrate * db7
    b6   += -learnrate * db6
    b4   += -learnrate * db4
    b2   += -learnrate * db2

print(f"{numsteps} step(s) on {N} images in {time.perf_counter() - started:.2f}s")

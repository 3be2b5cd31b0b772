"""BinaryNet.pytorch (github.com/itayhubara/BinaryNet.pytorch) idioms.

models/binarized_modules.py: `Binarize(tensor)` is `tensor.sign()` (torch.sign: sign(0) = 0);
BinarizeLinear / BinarizeConv2d binarize their input unless it is the image (`input.size(1) !=
784` / `!= 3`), binarize the weight, and add the bias as `out += self.bias.view(1, -1).expand_as(out)`.
The activation between layers is BN then nn.Hardtanh; the sign is taken by the next layer.
The original swaps `.data` in place (`input.data = Binarize(input.data)`, `self.weight.data =
Binarize(self.weight.org)`); torch.export cannot trace that ("We found a fake tensor in the
exported program constant's list"), so a user who exports writes the same thing functionally,
as below: torch.sign in eval (what is exported), and in training the gradient the `.data` swap
gives (identity through the sign). Written for this corpus, not copied.
"""

from __future__ import annotations

import torch.nn as nn
import torch.nn.functional as F

from .common import Outside


def Binarize(tensor, quant_mode="det"):
    return tensor.sign()


def train_binarize(tensor):
    """What the `.data` swap amounts to while training: sign forward, identity backward."""
    return tensor + (Binarize(tensor) - tensor).detach()


class BinarizeLinear(nn.Linear):
    def forward(self, input):
        b = train_binarize if self.training else Binarize
        if input.size(1) != 784:
            input = b(input)
        out = F.linear(input, b(self.weight))
        if self.bias is not None:
            out += self.bias.view(1, -1).expand_as(out)
        return out


class BinarizeConv2d(nn.Conv2d):
    def forward(self, input):
        b = train_binarize if self.training else Binarize
        if input.size(1) != 1:  # BinaryNet.pytorch: `!= 3` (the RGB image is not binarized)
            input = b(input)
        out = F.conv2d(input, b(self.weight), None, self.stride, self.padding,
                       self.dilation, self.groups)
        if self.bias is not None:
            out += self.bias.view(1, -1, 1, 1).expand_as(out)
        return out


class Net(nn.Module):
    """main_mnist.py's Net, narrower: fc -> BN -> Hardtanh (x2), dropout, fc4 -> LogSoftmax.
    The transforms ToTensor + Normalize((0.1307,), (0.3081,)) are moved into forward(); the
    input is the float image 0..255, N x 1 x 28 x 28, flattened with x.view(-1, 28*28)."""

    def __init__(self, width=64):
        super().__init__()
        self.fc1 = BinarizeLinear(784, width)
        self.htanh1 = nn.Hardtanh()
        self.bn1 = nn.BatchNorm1d(width)
        self.fc2 = BinarizeLinear(width, width)
        self.htanh2 = nn.Hardtanh()
        self.bn2 = nn.BatchNorm1d(width)
        self.fc4 = BinarizeLinear(width, 10)
        self.logsoftmax = nn.LogSoftmax(dim=1)
        self.drop = nn.Dropout(0.5)

    def forward(self, x):
        x = (x / 255.0 - 0.1307) / 0.3081
        x = x.view(-1, 28 * 28)
        x = self.fc1(x)
        x = self.bn1(x)
        x = self.htanh1(x)
        x = self.fc2(x)
        x = self.drop(x)
        x = self.bn2(x)
        x = self.htanh2(x)
        x = self.fc4(x)
        return self.logsoftmax(x)


class VGGStyle(nn.Module):
    """models/vgg_cifar10_binary.py's layout, two blocks (16 and 32 channels): BinarizeConv2d(bias)
    -> MaxPool2d -> BatchNorm2d -> Hardtanh(inplace), classifier BinarizeLinear -> BN ->
    Hardtanh, last BinarizeLinear -> BatchNorm1d(affine=False) -> LogSoftmax; forward()
    flattens with x.view(-1, C*H*W). The image comes in as uint8 N x 28 x 28 and is scaled
    x / 127.5 - 1 (not exact in float32; the first conv's zero padding pads with pixel 127.5).
    The second block has 32 channels, not 16: BinarizeLinear signs its input only when
    input.size(1) != 784 (the MNIST image), and 16 * 7 * 7 is 784, so with 16 channels the
    classifier would read the real-valued hardtanh output unbinarized. The original's classifier
    input is 512 * 4 * 4 = 8192, never 784."""

    def __init__(self, num_classes=10):
        super().__init__()
        self.features = nn.Sequential(
            BinarizeConv2d(1, 16, kernel_size=3, stride=1, padding=1, bias=True),
            nn.MaxPool2d(kernel_size=2, stride=2),
            nn.BatchNorm2d(16),
            nn.Hardtanh(inplace=True),
            BinarizeConv2d(16, 32, kernel_size=3, padding=1, bias=True),
            nn.MaxPool2d(kernel_size=2, stride=2),
            nn.BatchNorm2d(32),
            nn.Hardtanh(inplace=True),
        )
        self.classifier = nn.Sequential(
            BinarizeLinear(32 * 7 * 7, 32, bias=True),
            nn.BatchNorm1d(32),
            nn.Hardtanh(inplace=True),
            BinarizeLinear(32, num_classes, bias=True),
            nn.BatchNorm1d(num_classes, affine=False),
            nn.LogSoftmax(dim=1),
        )

    def forward(self, x):
        x = x.float().unsqueeze(1) / 127.5 - 1.0
        x = self.features(x)
        x = x.view(-1, 32 * 7 * 7)
        return self.classifier(x)


MODELS = [
    Outside(
        name="binarynet_mlp",
        source="itayhubara/BinaryNet.pytorch main_mnist.py Net + models/binarized_modules.py "
               "(Binarize = tensor.sign(), BinarizeLinear, bias via expand_as)",
        idioms=("torch.sign (x.sign()) on activations and weights", "hardtanh then sign",
                "(x/255 - mean)/std scalar", "float input 0..255", "input N x 1 x H x W",
                "x.view(-1, 784)", "bias on binary layers", "last layer binary Linear with bias, no BN",
                "log_softmax at the end", "static batch export (x[:4])"),
        build=Net, input="f32_nchw", export="static:4", output="log_softmax", hidden=2,
        exact_float32=False, min_accuracy=0.4),
    Outside(
        name="mixed_binarynet_cnn",
        source="itayhubara/BinaryNet.pytorch models/vgg_cifar10_binary.py + "
               "models/binarized_modules.py (BinarizeConv2d)",
        idioms=("the 'mixed' model: torch.sign + hardtanh + x/127.5 - 1 + conv->pool->BN->sign + biases",
                "nn.Sequential", "BN affine=False on the last layer", "zero padding on +-1 input",
                "x.view(-1, C*H*W)", "log_softmax at the end", "dynamic batch export"),
        build=VGGStyle, input="u8_nhw", export="dynamic", output="log_softmax", hidden=3,
        exact_float32=False, min_accuracy=0.5),
]

"""pytorchexample: the quickstart's model, data and training loops.

Laid out as Flower's quickstart-pytorch ``task.py`` (``Net``, ``load_data``, ``train``,
``test``); the data is local and synthetic instead of CIFAR-10 from the Hugging Face hub, so the
app needs no network and no flwr-datasets. Every line that differs in what it does from the
quickstart is marked ``# fednot:``.
"""

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset


class Net(nn.Module):
    """Model (simple CNN adapted from 'PyTorch: A 60 Minute Blitz'), as in the quickstart."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 6, 5)
        self.pool = nn.MaxPool2d(2, 2)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.fc1 = nn.Linear(16 * 5 * 5, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, 10)

    def forward(self, x):
        """Logits of a batch of 3x32x32 images (CIFAR-10's shape)."""
        x = self.pool(F.relu(self.conv1(x)))
        x = self.pool(F.relu(self.conv2(x)))
        x = x.view(-1, 16 * 5 * 5)
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        return self.fc3(x)


SAMPLES_PER_PARTITION = 60  # fednot: a few CIFAR-shaped images per node, so tests run in seconds


class LocalImages(Dataset):  # fednot: local data instead of flwr-datasets' FederatedDataset
    """Noisy class prototypes of CIFAR-10's shape; batches are dicts, as the hub's are."""

    def __init__(self, seed: int, size: int):  # fednot
        prototypes = torch.rand(10, 3, 32, 32, generator=torch.Generator().manual_seed(0))
        generator = torch.Generator().manual_seed(seed)  # fednot
        self.labels = torch.randint(0, 10, (size,), generator=generator)  # fednot
        noise = torch.randn(size, 3, 32, 32, generator=generator)  # fednot
        self.images = (prototypes[self.labels] - 0.5) / 0.5 + 0.5 * noise  # fednot

    def __len__(self):  # fednot
        return len(self.labels)  # fednot

    def __getitem__(self, index):  # fednot
        return {"img": self.images[index], "label": self.labels[index]}  # fednot


def load_data(partition_id: int, num_partitions: int, batch_size: int):
    """Load the partition's data: 80% train, 20% test."""
    data = LocalImages(seed=1000 + partition_id, size=SAMPLES_PER_PARTITION)  # fednot
    split = int(0.8 * len(data))  # fednot
    train, test = torch.utils.data.random_split(  # fednot
        data, [split, len(data) - split], generator=torch.Generator().manual_seed(42)  # fednot
    )  # fednot
    trainloader = DataLoader(train, batch_size=batch_size, shuffle=True)
    testloader = DataLoader(test, batch_size=batch_size)
    return trainloader, testloader


def load_centralized_dataset():
    """Load the server's test set and return its dataloader."""
    return DataLoader(LocalImages(seed=999, size=100), batch_size=128)  # fednot: local data


def train(net, trainloader, epochs, lr, device):
    """Train the model on the training set; return the average training loss."""
    net.to(device)
    criterion = torch.nn.CrossEntropyLoss().to(device)
    optimizer = torch.optim.SGD(net.parameters(), lr=lr, momentum=0.9)
    net.train()
    running_loss = 0.0
    for _ in range(epochs):
        for batch in trainloader:
            images, labels = batch["img"].to(device), batch["label"].to(device)
            optimizer.zero_grad()
            loss = criterion(net(images), labels)
            loss.backward()
            optimizer.step()
            running_loss += loss.item()
    return running_loss / (epochs * len(trainloader))


def test(net, testloader, device):
    """Validate the model on the test set; return the loss and the accuracy."""
    net.to(device)
    criterion = torch.nn.CrossEntropyLoss()
    correct, loss = 0, 0.0
    with torch.no_grad():
        for batch in testloader:
            images, labels = batch["img"].to(device), batch["label"].to(device)
            outputs = net(images)
            loss += criterion(outputs, labels).item()
            correct += (torch.max(outputs.data, 1)[1] == labels).sum().item()
    return loss / len(testloader), correct / len(testloader.dataset)
